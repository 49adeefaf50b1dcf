"""An inverter driven by a register-table profile: a non-SunSpec device is a data file, not code."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from hal.clock import WallClock
from hal.errors import InverterUnreachable, SetpointNotAccepted
from hal.inverter import codec
from hal.inverter.base import BatteryInverter, ConnectionStatus, OperatingStatus, Ratings, Telemetry
from hal.inverter.settings import InverterSettings
from hal.inverter.table_profile import RATING_POINTS, TablePoint, TableProfile, WriteStep, load_profile
from hal.modbus import MAX_READ_REGISTERS, ModbusBus

_LOGGER = logging.getLogger(__name__)

_Range = tuple[bool, int, int]  # (input registers?, first address, count)
_S = TypeVar("_S", ConnectionStatus, OperatingStatus)

__all__ = ["TableInverter", "load_profile"]


class TableInverter(BatteryInverter):
    """Reads points and runs write sequences exactly as the profile file describes them."""

    def __init__(
        self,
        bus: ModbusBus,
        settings: InverterSettings,
        profile: TableProfile,
        *,
        wall_clock: WallClock,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self.profile = profile
        self._wall_clock = wall_clock
        self._on_close = on_close
        self._active: float | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def bus(self) -> ModbusBus:
        """The shared bus this inverter talks over (its counters feed health reports and the bench)."""
        return self._bus

    async def read_ratings(self) -> Ratings:
        """Rating and setting points of the profile; points it does not define are None."""
        values = await self._read_points(n for n in RATING_POINTS if n in self.profile.points)
        ratings = Ratings(
            max_w=values.get("max_w"),
            max_charge_w=values.get("max_charge_w"),
            max_discharge_w=values.get("max_discharge_w"),
            energy_capacity_wh=values.get("capacity_wh"),
            set_max_w=values.get("set_max_w"),
            set_max_charge_w=values.get("set_max_charge_w"),
            set_max_discharge_w=values.get("set_max_discharge_w"),
        )
        return ratings

    async def read_telemetry(self) -> Telemetry:
        """W, Hz, SoC and states as the profile maps them (the guard judges their plausibility)."""
        names = [n for n in ("w", "hz", "soc_pct", "operating", "connection") if n in self.profile.points]
        raws = await self._read_raw(names)
        points = self.profile.points
        soc = self._number(points["soc_pct"], raws) if "soc_pct" in points else None
        hz = self._number(points["hz"], raws) if "hz" in points else None
        return Telemetry(
            timestamp=self._wall_clock(),
            w=self._number(points["w"], raws),
            hz=hz,
            soc_pct=soc,
            connection=self._state(points.get("connection"), raws, ConnectionStatus),
            operating=self._state(points.get("operating"), raws, OperatingStatus),
        )

    async def set_active_power(self, watts: float) -> float:
        """Run the `set_active_power` sequence (the guard has clamped `watts`), read it back."""
        async with self._lock:
            held = _quantised(watts, self.profile.writes["set_active_power"])
            await self._run("set_active_power", held)
            self._active = held
            return held

    async def keepalive(self) -> None:
        """Run the `keepalive` sequence (or repeat the setpoint) while a setpoint is active."""
        async with self._lock:
            if self._active is None:
                return
            name = "keepalive" if "keepalive" in self.profile.writes else "set_active_power"
            await self._run(name, self._active)

    async def release(self) -> None:
        """Run the `release` sequence: the device goes back to its own mode."""
        async with self._lock:
            self._active = None
            await self._run("release", 0.0)

    async def close(self) -> None:
        """Stop using the bus."""
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                await self._on_close()

    # -- registers --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InverterUnreachable("inverter is closed")

    async def _run(self, sequence: str, watts: float) -> None:
        self._check_open()
        steps = self.profile.writes[sequence]
        written: list[tuple[WriteStep, list[int]]] = []
        for step in steps:
            words = codec.encode(self._step_value(step, watts) / step.scale, step.kind, step.word_order)
            await self._bus.write(step.address, words, self._settings.device_id, single=step.single)
            written.append((step, words))
        for step, words in written:
            if not step.verify:
                continue
            back = await self._bus.read(step.address, len(words), self._settings.device_id)
            if back != words:
                raise SetpointNotAccepted(
                    f"{self.profile.source}: {sequence} wrote {words} at {step.address}, read back {back}"
                )

    def _step_value(self, step: WriteStep, watts: float) -> float:
        value = step.value
        if isinstance(value, dict):
            key = "charge" if watts < -0.5 else "discharge" if watts > 0.5 else "idle"
            return float(value[key])
        if value == "watts":
            return watts
        if value == "abs_watts":
            return abs(watts)
        if value == "revert_s":
            return self._settings.revert_timeout_s
        assert isinstance(value, float)
        return value

    async def _read_points(self, names: Iterable[str]) -> dict[str, float | None]:
        wanted = list(names)
        raws = await self._read_raw(wanted)
        return {n: self._number(self.profile.points[n], raws) for n in wanted}

    async def _read_raw(self, names: Sequence[str]) -> dict[tuple[bool, int], int]:
        self._check_open()
        needed: list[_Range] = []
        for name in names:
            pt = self.profile.points[name]
            if pt.constant is not None:
                continue
            inp = pt.function == "input"
            needed.append((inp, pt.address, codec.size_of(pt.kind)))
            if pt.scale_register is not None:
                needed.append((inp, pt.scale_register, 1))
        words: dict[tuple[bool, int], int] = {}
        for inp, first, count in _merge(needed):
            regs = await self._bus.read(first, count, self._settings.device_id, input_registers=inp)
            for i, word in enumerate(regs):
                words[(inp, first + i)] = word
        return words

    def _raw(self, pt: TablePoint, words: dict[tuple[bool, int], int]) -> float | int | None:
        inp = pt.function == "input"
        regs = [words[(inp, pt.address + i)] for i in range(codec.size_of(pt.kind))]
        # The profile's own "invalid" codes compare against the unsigned register content.
        if pt.invalid and codec.unsigned(regs, pt.word_order) in pt.invalid:
            return None
        return codec.decode(regs, pt.kind, pt.word_order)

    def _number(self, pt: TablePoint, words: dict[tuple[bool, int], int]) -> float | None:
        if pt.constant is not None:
            return pt.constant
        raw = self._raw(pt, words)
        if raw is None:
            return None
        value = float(raw) * pt.scale * pt.sign
        if pt.scale_register is not None:
            sf = codec.decode([words[(pt.function == "input", pt.scale_register)]], "sunssf")
            scaled = codec.scaled(value, sf)
            return None if scaled is None else scaled
        return value

    def _state(self, pt: TablePoint | None, words: dict[tuple[bool, int], int], kind: type[_S]) -> _S | None:
        if pt is None:
            return None
        raw = pt.constant if pt.constant is not None else self._raw(pt, words)
        if raw is None:
            return None
        if pt.states is not None:
            name = pt.states.get(int(raw))
            return None if name is None else kind[name.upper()]
        try:
            return kind(int(raw))
        except ValueError:
            return None


def _merge(ranges: list[_Range]) -> list[_Range]:
    """Merge overlapping or adjacent ranges of one register kind; never read across a gap."""
    merged: list[_Range] = []
    for inp, first, count in sorted(set(ranges)):
        if merged:
            m_inp, m_first, m_count = merged[-1]
            end = first + count
            if m_inp == inp and first <= m_first + m_count and end - m_first <= MAX_READ_REGISTERS:
                merged[-1] = (inp, m_first, max(m_count, end - m_first))
                continue
        merged.append((inp, first, count))
    return merged


def _quantised(target: float, steps: tuple[WriteStep, ...]) -> float:
    """The setpoint in the register's resolution, never of a larger magnitude than asked."""
    for step in steps:
        if step.value in ("watts", "abs_watts"):
            resolution = abs(step.scale)
            count = round(abs(target) / resolution)
            if count * resolution > abs(target) + 1e-9:
                count -= 1
            return math.copysign(count * resolution, target)
    return target
