"""The site meter at the grid connection point on the inverters' bus: a SunSpec meter (models
201-204), or any meter whose net power sits in one register (`TableMeter`).

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

from hal.clock import WallClock, utc_now
from hal.errors import InverterProtocolError, InverterUnreachable, ModbusExceptionReply, ProfileError
from hal.inverter import codec
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
        wall_clock: WallClock = utc_now,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._bus = bus
        self.device_id = device_id
        self._sign = -1.0 if import_positive else 1.0
        self._wall_clock = wall_clock
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
            timestamp=self._wall_clock(),
            export_w=None if w is None else self._sign * w,
            hz=block.value("Hz"),
        )

    async def close(self) -> None:
        """Give the bus back."""
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                await self._on_close()


@dataclass(frozen=True)
class MeterRegister:
    """Where a register-table meter keeps its net power: address, type, word order and scale (W)."""

    address: int
    kind: str = "int32"
    word_order: codec.WordOrder = "big"
    input_registers: bool = False
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"meter register address must be within 0..65535, got {self.address}")
        if self.kind not in ("int16", "int32", "float32"):
            raise ValueError(f"meter register type must be int16, int32 or float32, got {self.kind!r}")
        if self.scale == 0:
            raise ValueError("meter register scale must not be 0")


class TableMeter:
    """A meter whose net power is one register (a vendor map); no frequency."""

    def __init__(
        self,
        bus: ModbusBus,
        device_id: int,
        register: MeterRegister,
        *,
        import_positive: bool = True,
        wall_clock: WallClock = utc_now,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._bus = bus
        self.device_id = device_id
        self._register = register
        self._sign = -1.0 if import_positive else 1.0
        self._wall_clock = wall_clock
        self._on_close = on_close
        self._closed = False

    async def read(self) -> MeterReading:
        """Net power now; raises `InverterUnreachable` when the meter does not answer."""
        if self._closed:
            raise InverterUnreachable("meter is closed")
        reg = self._register
        words = await self._bus.read(
            reg.address, codec.size_of(reg.kind), self.device_id, input_registers=reg.input_registers
        )
        raw = codec.decode(words, reg.kind, reg.word_order)
        w = None if raw is None else float(raw) * reg.scale
        if w is not None and abs(w) > 10_000_000:
            raise InverterProtocolError(f"meter {self.device_id}: implausible power {w:g} W")
        return MeterReading(self._wall_clock(), None if w is None else self._sign * w, None)

    async def close(self) -> None:
        """Give the bus back."""
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                await self._on_close()
