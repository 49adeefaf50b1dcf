"""Typed settings for one inverter; the app's config module builds these, hal validates them once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hal.inverter.battery import BatterySpec
from hal.modbus import BusEndpoint, BusSettings, SerialSettings, TcpSettings

Transport = Literal["rtu", "tcp", "sim"]
SetpointMode = Literal["watts", "percent"]

SUNSPEC = "sunspec"

#: no battery inverter behind a gateway like this one is larger; beyond it a nameplate is a typo
MAX_NAMEPLATE_W = 1_000_000.0


@dataclass(frozen=True)
class Nameplate:
    """The battery's nameplate as the installer writes it: the hard ceiling of every setpoint, W."""

    max_discharge_w: float
    max_charge_w: float

    def __post_init__(self) -> None:
        for name in ("max_discharge_w", "max_charge_w"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= MAX_NAMEPLATE_W
            ):
                raise ValueError(
                    f"nameplate {name} must be > 0 and at most {MAX_NAMEPLATE_W:.0f} W, got {value!r}"
                )

    @property
    def max_w(self) -> float:
        """The larger of the two: the active power the battery can move at all."""
        return max(self.max_discharge_w, self.max_charge_w)


@dataclass(frozen=True)
class InverterSettings:
    """How to reach one battery inverter and how to talk to it.

    `transport`: "rtu" (needs `serial`), "tcp" (needs `tcp`) or "sim" (the lab package's in-process
    battery, no Modbus: development installs only, a box refuses it). `profile`: "sunspec" to
    discover a SunSpec map, the path of a register-table YAML file, or the bare name of one shipped
    in `hal/inverter/profiles/` (e.g. "example-hybrid").
    `device_id`: the Modbus unit id. `bus`: timeouts, retries and pacing of the bus (devices on one
    port or endpoint share one connection and must agree on it). `setpoint_mode`: SunSpec 704 watts
    or percent-of-WMax mode. `revert_timeout_s`: the device-side timer after which the battery
    reverts to its own mode unless refreshed; `keepalive_interval_s` defaults to a third of it.
    `sim`: the simulated battery's ratings (transport "sim" only). `nameplate`: the installer's hard
    ceiling; no write ever exceeds it, whatever the inverter reports. `ratings_max_age_s`: ratings older
    than this are read again before they are used (a minute at most).
    """

    transport: Transport
    profile: str = SUNSPEC
    device_id: int = 1
    serial: SerialSettings | None = None
    tcp: TcpSettings | None = None
    bus: BusSettings = field(default_factory=BusSettings)
    setpoint_mode: SetpointMode = "watts"
    revert_timeout_s: float = 60.0
    keepalive_interval_s: float | None = None
    sim: BatterySpec = field(default_factory=BatterySpec)
    nameplate: Nameplate | None = None
    ratings_max_age_s: float = 60.0

    def __post_init__(self) -> None:
        if self.transport not in ("rtu", "tcp", "sim"):
            raise ValueError(f"transport must be 'rtu', 'tcp' or 'sim', got {self.transport!r}")
        if self.transport == "rtu" and self.serial is None:
            raise ValueError("transport 'rtu' needs serial settings (port, baudrate, parity, ...)")
        if self.transport == "tcp" and self.tcp is None:
            raise ValueError("transport 'tcp' needs tcp settings (host, port)")
        if not 0 <= self.device_id <= 247:
            raise ValueError(f"device_id must be within 0..247, got {self.device_id!r}")
        if self.setpoint_mode not in ("watts", "percent"):
            raise ValueError(f"setpoint_mode must be 'watts' or 'percent', got {self.setpoint_mode!r}")
        if not 1.0 <= self.revert_timeout_s <= 86400.0:
            raise ValueError(f"revert_timeout_s must be within 1..86400 s, got {self.revert_timeout_s!r}")
        interval = self.keepalive_interval
        if not 0 < interval < self.revert_timeout_s:
            raise ValueError(
                f"keepalive_interval_s must be > 0 and below revert_timeout_s ({self.revert_timeout_s}), "
                f"got {interval!r}"
            )
        if not 1.0 <= self.ratings_max_age_s <= 60.0:
            raise ValueError(f"ratings_max_age_s must be within 1..60 s, got {self.ratings_max_age_s!r}")
        if not self.profile:
            raise ValueError("profile must be 'sunspec' or the path of a register-table YAML file")

    @property
    def endpoint(self) -> BusEndpoint | None:
        """Where the inverter's bus is reached: `serial` for "rtu", `tcp` for "tcp" (None for "sim")."""
        return self.serial if self.transport == "rtu" else self.tcp if self.transport == "tcp" else None

    @property
    def keepalive_interval(self) -> float:
        """Seconds between refreshes of the device-side revert timer."""
        if self.keepalive_interval_s is not None:
            return self.keepalive_interval_s
        return self.revert_timeout_s / 3.0
