"""The site meter at the grid connection point: a SunSpec meter (models 201-204) on the inverters' bus.

Its one job here is the site's net active power, signed as everywhere in the project: positive =
export to the grid, negative = import. SunSpec meters count import as positive; a meter that
counts the other way is configured so (`import_positive=False`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from hal.clock import Clock, utc_now
from hal.errors import InverterProtocolError, InverterUnreachable, ModbusExceptionReply, ProfileError
from hal.inverter.sunspec_map import Block, SunSpecMap, discover
from hal.inverter.sunspec_points import METER_MODELS, POINTS
from hal.modbus import ModbusBus

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeterReading:
    """One reading of the site meter; `None` = unknown."""

    timestamp: datetime
    export_w: float | None
    """Net active power at the connection point, W: positive = export, negative = import."""
    hz: float | None


class SunSpecMeter:
    """A SunSpec meter on a shared bus; its map is discovered on first use."""

    def __init__(
        self,
        bus: ModbusBus,
        device_id: int,
        *,
        import_positive: bool = True,
        clock: Clock = utc_now,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._bus = bus
        self.device_id = device_id
        self._sign = -1.0 if import_positive else 1.0
        self._clock = clock
        self._on_close = on_close
        self._model: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def _find(self) -> tuple[int, int]:
        if self._model is None:
            found: SunSpecMap = await discover(self._bus, self.device_id)
            ids = [m for m in METER_MODELS if found.has(m)]
            if not ids:
                raise ProfileError(
                    f"device {self.device_id}: SunSpec map {found.ids} has no meter model (201-204)"
                )
            self._model = (ids[0], found.models[ids[0]].start)
        return self._model

    async def read(self) -> MeterReading:
        """Net power and frequency now; raises `InverterUnreachable` when the meter does not answer."""
        if self._closed:
            raise InverterUnreachable("meter is closed")
        async with self._lock:
            model_id, start = await self._find()
            first, last = POINTS[model_id]["Hz"].offset, POINTS[model_id]["W_SF"].offset
            try:
                words = await self._bus.read(start + first, last - first + 1, self.device_id)
            except ModbusExceptionReply as exc:
                if exc.code == 2:
                    self._model = None  # the map moved: discover it again next time
                raise
        block = Block(model_id, first, words)
        w = block.value("W")
        if w is not None and abs(w) > 10_000_000:
            raise InverterProtocolError(f"meter {self.device_id}: implausible power {w:g} W")
        return MeterReading(
            timestamp=self._clock(),
            export_w=None if w is None else self._sign * w,
            hz=block.value("Hz"),
        )

    async def close(self) -> None:
        """Give the bus back."""
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                await self._on_close()
