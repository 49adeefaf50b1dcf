"""An inverter wrapper that remembers the last values read and written, for the status page and LED.

The telemetry and control parts talk to the inverter; the status page must not add Modbus traffic
of its own, so it shows what they last saw through this wrapper.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hal.errors import HalError
from hal.inverter.base import BatteryInverter, Ratings, Telemetry

T = TypeVar("T")


class ObservedInverter(BatteryInverter):
    """Delegates to `inner`; keeps the last telemetry, ratings, setpoint and failure."""

    def __init__(self, inner: BatteryInverter, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self._monotonic = monotonic
        self.telemetry: Telemetry | None = None
        self.ratings: Ratings | None = None
        #: watts last accepted by the inverter; None while released (its own mode)
        self.setpoint_w: float | None = None
        #: the last failure, cleared by the next success
        self.failure: str | None = None
        self.last_success: float | None = None

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await fn()
        except HalError as exc:
            self.failure = str(exc) or type(exc).__name__
            raise
        self.failure = None
        self.last_success = self._monotonic()
        return result

    async def read_ratings(self) -> Ratings:
        """Read and remember the ratings."""
        self.ratings = await self._call(self.inner.read_ratings)
        return self.ratings

    async def read_telemetry(self) -> Telemetry:
        """Read and remember one telemetry sample."""
        self.telemetry = await self._call(self.inner.read_telemetry)
        return self.telemetry

    async def set_active_power(self, watts: float) -> float:
        """Write a setpoint and remember what the device holds."""
        self.setpoint_w = await self._call(lambda: self.inner.set_active_power(watts))
        return self.setpoint_w

    async def keepalive(self) -> None:
        """Refresh the device-side revert timer."""
        await self._call(self.inner.keepalive)

    async def release(self) -> None:
        """Hand the battery back to its own mode."""
        await self._call(self.inner.release)
        self.setpoint_w = None

    async def close(self) -> None:
        """Close the inner inverter."""
        await self.inner.close()
