"""A recording battery inverter: the HAL's sim backend that also keeps a log of every command."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from hal.clock import Clock, utc_now
from hal.inverter.battery import BatterySpec
from hal.inverter.sim import SimInverter


class RecordingInverter(SimInverter):
    """SimInverter plus `writes` [(time, watts asked)] and `releases` [time], stamped by its clock."""

    def __init__(self, spec: BatterySpec | None = None, *, clock: Clock = utc_now) -> None:
        super().__init__(spec or BatterySpec(), revert_timeout_s=300.0, clock=clock)
        self.writes: list[tuple[datetime, float]] = []
        self.releases: list[datetime] = []

    async def set_active_power(self, watts: float) -> float:
        held = await super().set_active_power(watts)
        self.writes.append((self._clock(), watts))
        return held

    async def release(self) -> None:
        await super().release()
        self.releases.append(self._clock())

    @property
    def watts(self) -> list[float]:
        """The commanded watts, in order."""
        return [w for _, w in self.writes]


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Wait (polling briefly) until `predicate()` holds; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)
