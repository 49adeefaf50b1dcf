"""Transport "sim": the battery model behind the `BatteryInverter` interface, without Modbus."""

from __future__ import annotations

import logging

from hal.clock import WallClock, utc_now
from hal.errors import InverterUnreachable
from hal.inverter.base import BatteryInverter, ConnectionStatus, OperatingStatus, Ratings, Telemetry
from hal.inverter.battery import BatterySpec
from wattsmart_lab.battery import BatteryModel

_LOGGER = logging.getLogger(__name__)


class SimInverter(BatteryInverter):
    """An in-process simulated battery inverter; time comes from the injected wall clock.

    `offline = True` makes every call raise `InverterUnreachable`, as a cut cable would.
    """

    def __init__(
        self, spec: BatterySpec, *, revert_timeout_s: float = 60.0, wall_clock: WallClock = utc_now
    ) -> None:
        self._wall_clock = wall_clock
        self._revert_s = revert_timeout_s
        self.model = BatteryModel(spec, self._now())
        self.offline = False
        self._closed = False

    def _now(self) -> float:
        return self._wall_clock().timestamp()

    def _check(self) -> float:
        if self._closed:
            raise InverterUnreachable("simulated inverter is closed")
        if self.offline:
            raise InverterUnreachable("simulated inverter is offline")
        now = self._now()
        self.model.advance(now)
        return now

    async def read_ratings(self) -> Ratings:
        """Ratings of the simulated battery (settings equal ratings)."""
        self._check()
        spec = self.model.spec
        return Ratings(
            max_w=spec.max_w,
            max_charge_w=spec.max_charge_w,
            max_discharge_w=spec.max_discharge_w,
            energy_capacity_wh=spec.capacity_wh,
            set_max_w=spec.max_w,
            set_max_charge_w=spec.max_charge_w,
            set_max_discharge_w=spec.max_discharge_w,
        )

    async def read_telemetry(self) -> Telemetry:
        """Power, frequency and SoC of the model at the clock's current time."""
        now = self._check()
        power = self.model.power_w
        return Telemetry(
            timestamp=self._wall_clock(),
            w=power,
            hz=self.model.hz(now),
            soc_pct=self.model.soc_pct,
            connection=ConnectionStatus.CONNECTED,
            operating=OperatingStatus.RUNNING if abs(power) > 0.5 else OperatingStatus.STANDBY,
        )

    async def set_active_power(self, watts: float) -> float:
        """Command the model; it reverts to its own mode after `revert_timeout_s` unless refreshed."""
        now = self._check()
        self.model.command(round(watts), now, self._revert_s)
        target = self.model.target_w
        _LOGGER.debug("sim setpoint %.0f W (asked %.1f W)", target or 0.0, watts)
        return 0.0 if target is None else target

    async def keepalive(self) -> None:
        """Restart the revert timer of the active setpoint."""
        now = self._check()
        self.model.refresh(now, self._revert_s)

    async def release(self) -> None:
        """Hand the battery back to its own mode (idle)."""
        now = self._check()
        self.model.command(None, now)

    async def close(self) -> None:
        """Mark the simulator closed; later calls raise `InverterUnreachable`."""
        self._closed = True
