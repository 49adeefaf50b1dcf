"""The site meter as the gateway's parts share it: the last reading and failure, for control,
telemetry and the status page (which adds no Modbus traffic of its own)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from hal.errors import HalError
from hal.meter import MeterReading

_LOGGER = logging.getLogger(__name__)


class MeterReader(Protocol):
    """What reads a site meter (`hal.meter.SunSpecMeter`)."""

    async def read(self) -> MeterReading:
        """One reading; raises a `HalError` when the meter does not answer."""
        ...

    async def close(self) -> None:
        """Give the bus back."""
        ...


class ObservedMeter:
    """Delegates to the meter; keeps the last reading, when it was taken and the last failure."""

    def __init__(self, inner: MeterReader, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self._monotonic = monotonic
        self.reading: MeterReading | None = None
        self.read_at: float | None = None
        #: the last failure, cleared by the next success
        self.failure: str | None = None

    async def read(self) -> MeterReading:
        """Read the meter and remember the result (a failure is logged once per outage)."""
        try:
            reading = await self.inner.read()
        except HalError as exc:
            if self.failure is None:
                _LOGGER.warning("site meter does not answer: %s", exc)
            self.failure = str(exc) or type(exc).__name__
            raise
        if self.failure is not None:
            _LOGGER.info("site meter answers again")
        self.failure = None
        self.reading, self.read_at = reading, self._monotonic()
        return reading

    def status(self) -> dict[str, object]:
        """What the status page shows of the meter (no I/O)."""
        reading = self.reading
        return {
            "reachable": self.failure is None and reading is not None,
            "site export W": reading.export_w if reading else None,
            "frequency Hz": reading.hz if reading else None,
            "read at": reading.timestamp.isoformat() if reading else None,
            "problem": self.failure,
        }

    async def close(self) -> None:
        """Close the meter."""
        await self.inner.close()
