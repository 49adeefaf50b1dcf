"""The battery inverter interface the app programs against, and the values it returns.

Units are plain SI at this boundary: watts, watt-hours, hertz, percent, seconds. Power is signed the
same way everywhere in the project: positive = discharge / export, negative = charge / import.
`None` in any field means "unknown" (not implemented by the device, not readable right now, or an
implausible value); a caller must never substitute a number for it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self


class ConnectionStatus(enum.Enum):
    """Whether the inverter is connected to the grid (SunSpec 701.ConnSt)."""

    DISCONNECTED = 0
    CONNECTED = 1


class OperatingStatus(enum.Enum):
    """What the inverter is doing (SunSpec 701.InvSt values)."""

    OFF = 0
    SLEEPING = 1
    STARTING = 2
    RUNNING = 3
    THROTTLED = 4
    SHUTTING_DOWN = 5
    FAULT = 6
    STANDBY = 7


@dataclass(frozen=True)
class Ratings:
    """Nameplate ratings and the current settings of the inverter; `None` = unknown."""

    max_w: float | None
    """Nameplate maximum active power, W (702.WMaxRtg, 120.WRtg)."""
    max_charge_w: float | None
    """Nameplate maximum charge rate, W, as a positive number (702.WChaRteMaxRtg, 120.MaxChaRte)."""
    max_discharge_w: float | None
    """Nameplate maximum discharge rate, W (702.WDisChaRteMaxRtg, 120.MaxDisChaRte)."""
    energy_capacity_wh: float | None
    """Usable energy capacity, Wh (713.WHRtg, 120.WHRtg)."""
    set_max_w: float | None = None
    """Current maximum active power setting, W (702.WMax, 121.WMax)."""
    set_max_charge_w: float | None = None
    """Current maximum charge rate setting, W (702.WChaRteMax, 124.WChaMax)."""
    set_max_discharge_w: float | None = None
    """Current maximum discharge rate setting, W (702.WDisChaRteMax)."""

    # The one definition of the battery inverter's limits: opModFixedW is a share of them, DERSettings
    # reports them and `clamp` (the only clamp of a setpoint) holds every write to them, so the server
    # computes exactly what we write.

    def active_power_limit_w(self) -> float | None:
        """Largest active power, W, from the setting or the rating (DERSettings.setMaxW)."""
        return first_known(self.set_max_w, self.max_w)

    def charge_limit_w(self) -> float | None:
        """Largest charge power the device will take, W (positive): its charge rate within WMax.

        DERSettings.setMaxChargeRateW, and 100 % of a negative opModFixedW.
        """
        return _smallest(first_known(self.set_max_charge_w, self.max_charge_w), self.active_power_limit_w())

    def discharge_limit_w(self) -> float | None:
        """Largest discharge power the device will give, W: its discharge rate within WMax.

        DERSettings.setMaxDischargeRateW, and 100 % of a positive opModFixedW.
        """
        return _smallest(
            first_known(self.set_max_discharge_w, self.max_discharge_w), self.active_power_limit_w()
        )

    def clamp(self, watts: float) -> float | None:
        """`watts` held within the charge/discharge limits; None when the limit in its direction is unknown.

        Unknown never means unlimited: a caller that gets None must not write.
        """
        if watts == 0:
            return 0.0
        limit = self.discharge_limit_w() if watts > 0 else self.charge_limit_w()
        if limit is None:
            return None
        return max(-limit, min(limit, watts))


@dataclass(frozen=True)
class Telemetry:
    """One reading of the inverter; `None` = unknown."""

    timestamp: datetime
    """When the reading was taken (UTC, timezone-aware)."""
    w: float | None
    """AC active power, W: positive = discharging / exporting, negative = charging."""
    hz: float | None
    """Grid frequency, Hz."""
    soc_pct: float | None
    """Battery state of charge, percent of usable capacity."""
    connection: ConnectionStatus | None
    """Grid connection status."""
    operating: OperatingStatus | None
    """Operating status."""
    suspect: Mapping[str, float] = field(default_factory=dict)
    """Values the device reported that failed a plausibility check, by field name ("w", "hz", "soc_pct").

    Their field above is None (never trusted as truth); they are kept here to be reported as questionable.
    """


def first_known(*values: float | None) -> float | None:
    """The first of `values` that is known (not None), else None."""
    for value in values:
        if value is not None:
            return value
    return None


def _smallest(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


class BatteryInverter(abc.ABC):
    """One battery inverter, whatever the transport (Modbus RTU, Modbus TCP, in-process simulator).

    Contract shared by every implementation:

    * Methods are coroutines and may be called from several tasks; implementations serialise access.
    * A method that cannot reach the device raises `InverterUnreachable` (transient: retry with
      backoff); an answer that does not fit the device map raises `InverterProtocolError`; settings or
      a profile that cannot work raise `ProfileError` (reconfigure). Timeouts never leak as
      `TimeoutError`: they become `InverterUnreachable`.
    * Values are SI and signed (+ discharge, − charge); unknown values are `None`, never a number.
    * The object is an async context manager; leaving it calls `close()`.
    """

    @abc.abstractmethod
    async def read_ratings(self) -> Ratings:
        """Read the nameplate ratings and the current settings (the guarded inverter: at most ~60 s old)."""

    @abc.abstractmethod
    async def read_telemetry(self) -> Telemetry:
        """Read power, frequency, state of charge and status, stamped with the time of reading."""

    @abc.abstractmethod
    async def set_active_power(self, watts: float) -> float:
        """Command the active power (+ discharge, − charge) and return what the device now holds.

        The device layer quantises the request to its resolution, never to a larger magnitude; the
        guard (`hal.inverter.guard`) clamps it to the ceiling and the live ratings before that. The
        device-side revert timer is armed, so the battery goes back to its own mode by itself if the
        gateway stops refreshing; `keepalive()` refreshes it. The written value is read back: a
        device that did not take it raises `SetpointNotAccepted`.
        """

    async def apply_limits(self, discharge_w: float | None, charge_w: float | None) -> bool:
        """Cap the battery's own mode: discharge at most `discharge_w`, charge at most `charge_w`
        (positive W; None = no cap that way), with the device-side reversion armed as for a setpoint.

        True when the device now holds them (call again within the revert timeout to keep them;
        `release()` withdraws them). False, with nothing written, when it cannot hold limits of that
        kind (the default): the caller then works with setpoints. Limits are not clamped here: the
        guard holds them to the ratings like every setpoint.
        """
        del discharge_w, charge_w
        return False

    @abc.abstractmethod
    async def keepalive(self) -> None:
        """Refresh the device-side revert timer of the active setpoint; a no-op when none is active."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Withdraw the setpoint (and any `apply_limits`) and hand the battery back to its own mode."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop background work and release the connection; the device's revert timer still protects it."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
