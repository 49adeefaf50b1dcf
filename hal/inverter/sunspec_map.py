"""SunSpec discovery: find the "SunS" marker, then walk the model headers to the end of the map."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hal.errors import ModbusExceptionReply, ProfileError
from hal.inverter import codec
from hal.inverter.sunspec_points import BASE_ADDRESSES, END_MODEL_ID, LENGTHS, POINTS, SUNS_MARKER
from hal.modbus import ModbusBus

_LOGGER = logging.getLogger(__name__)

# A real map has a few dozen models at most; a longer walk means we are reading garbage.
_MAX_MODELS = 64
_ILLEGAL_ADDRESS = 2


@dataclass(frozen=True)
class ModelInstance:
    """Where one model sits: address of its ID register and its length L (registers after the header)."""

    model_id: int
    start: int
    length: int


@dataclass(frozen=True)
class SunSpecMap:
    """The discovered model chain of one device (first instance of each model id)."""

    base: int
    models: dict[int, ModelInstance]

    def has(self, *model_ids: int) -> bool:
        """Whether every given model is present."""
        return all(m in self.models for m in model_ids)

    @property
    def ids(self) -> list[int]:
        """Model ids in map order."""
        return [m.model_id for m in sorted(self.models.values(), key=lambda m: m.start)]


@dataclass(frozen=True)
class Block:
    """Registers read from one model, starting at a given offset; decodes points with their SFs."""

    model_id: int
    first_offset: int
    words: list[int]

    def raw(self, name: str) -> float | int | None:
        """The point's value without scale factor; None if unimplemented or outside this block."""
        pt = POINTS[self.model_id][name]
        at = pt.offset - self.first_offset
        size = codec.size_of(pt.kind)
        if at < 0 or at + size > len(self.words):
            raise ValueError(f"{self.model_id}.{name} is not inside this block")
        return codec.decode(self.words[at : at + size], pt.kind)

    def value(self, name: str) -> float | None:
        """The point's value with its scale factor applied; None if either is unknown."""
        pt = POINTS[self.model_id][name]
        raw = self.raw(name)
        if pt.sf is None:
            return None if raw is None else float(raw)
        return codec.scaled(raw, self.raw(pt.sf))


async def discover(bus: ModbusBus, device_id: int) -> SunSpecMap:
    """Find the SunSpec map of a device; raises `ProfileError` when it has none."""
    base = await _find_base(bus, device_id)
    models: dict[int, ModelInstance] = {}
    address = base + 2
    for _ in range(_MAX_MODELS):
        try:
            model_id, length = await bus.read(address, 2, device_id)
        except ModbusExceptionReply as exc:
            # Some devices (several SMA models) have no end marker: an illegal address ends the map.
            if exc.code == _ILLEGAL_ADDRESS:
                break
            raise
        if model_id == END_MODEL_ID:
            break
        known = LENGTHS.get(model_id)
        if known is not None and length < known:
            raise ProfileError(
                f"device {device_id}: SunSpec model {model_id} at {address} has length {length}, "
                f"expected at least {known}"
            )
        models.setdefault(model_id, ModelInstance(model_id, address, length))
        address += length + 2
    else:
        raise ProfileError(f"device {device_id}: SunSpec map has no end marker after {_MAX_MODELS} models")
    result = SunSpecMap(base, models)
    _LOGGER.info("SunSpec device %d: map at %d with models %s", device_id, base, result.ids)
    return result


async def _find_base(bus: ModbusBus, device_id: int) -> int:
    for base in BASE_ADDRESSES:
        try:
            words = await bus.read(base, 2, device_id)
        except ModbusExceptionReply:
            continue
        if tuple(words) == SUNS_MARKER:
            return base
    raise ProfileError(
        f"device {device_id}: no SunSpec marker 'SunS' at any of {list(BASE_ADDRESSES)}; "
        "use a register-table profile for this device"
    )
