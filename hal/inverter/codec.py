"""Register codec: Modbus words to numbers and back, with "not implemented" sentinels as None.

SunSpec (and most vendors) mark an unimplemented point with a sentinel: int16 0x8000, uint16 /
enum16 / bitfield16 0xFFFF, int32 0x80000000, uint32 0xFFFFFFFF, a scale factor of 0x8000. These
must become "unknown", never the number they happen to encode.
"""

from __future__ import annotations

import math
import struct
from typing import Literal

RegisterType = Literal[
    "int16", "uint16", "enum16", "bitfield16", "sunssf", "int32", "uint32", "bitfield32", "acc32", "float32"
]
WordOrder = Literal["big", "little"]

SIZES: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "enum16": 1,
    "bitfield16": 1,
    "sunssf": 1,
    "int32": 2,
    "uint32": 2,
    "bitfield32": 2,
    "acc32": 2,
    "float32": 2,
}

_SENTINELS: dict[str, int | None] = {
    "int16": 0x8000,
    "uint16": 0xFFFF,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "sunssf": 0x8000,
    "int32": 0x80000000,
    "uint32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "acc32": None,
    "float32": None,
}
_SIGNED = frozenset({"int16", "sunssf", "int32"})

# SunSpec allows scale factors of -10..10; anything else is a broken or garbage register.
SF_MIN, SF_MAX = -10, 10


def size_of(kind: str) -> int:
    """Number of 16-bit registers a value of this type occupies."""
    return SIZES[kind]


def _join(words: list[int], order: WordOrder) -> int:
    if order == "little":
        words = list(reversed(words))
    value = 0
    for word in words:
        value = (value << 16) | (word & 0xFFFF)
    return value


def _split(value: int, count: int, order: WordOrder) -> list[int]:
    words = [(value >> (16 * (count - 1 - i))) & 0xFFFF for i in range(count)]
    return list(reversed(words)) if order == "little" else words


def unsigned(words: list[int], order: WordOrder = "big") -> int:
    """The registers as one unsigned integer, before any type or sentinel is applied."""
    return _join(list(words), order)


def decode(words: list[int], kind: str, order: WordOrder = "big") -> float | int | None:
    """Decode one value; sentinels, NaN and infinities give None."""
    if len(words) != SIZES[kind]:
        raise ValueError(f"{kind} needs {SIZES[kind]} registers, got {len(words)}")
    raw = _join(words, order)
    if kind == "float32":
        (number,) = struct.unpack(">f", raw.to_bytes(4, "big"))
        return None if math.isnan(number) or math.isinf(number) else float(number)
    if raw == _SENTINELS[kind]:
        return None
    if kind in _SIGNED:
        bits = 16 * SIZES[kind]
        if raw >= 1 << (bits - 1):
            raw -= 1 << bits
    if kind == "sunssf" and not SF_MIN <= raw <= SF_MAX:
        return None
    return raw


def encode(value: float, kind: str, order: WordOrder = "big") -> list[int]:
    """Encode one value (rounded to an integer unless float32); out of range raises ValueError."""
    count = SIZES[kind]
    if kind == "float32":
        (raw,) = struct.unpack(">I", struct.pack(">f", float(value)))
        return _split(raw, 2, order)
    number = round(value)
    bits = 16 * count
    if kind in _SIGNED:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    if not low <= number <= high:
        raise ValueError(f"{value!r} does not fit in {kind}")
    return _split(number & ((1 << bits) - 1), count, order)


def sentinel_words(kind: str) -> list[int]:
    """The "not implemented" encoding of a type (zeros where the type has none)."""
    sentinel = _SENTINELS[kind]
    return _split(0 if sentinel is None else sentinel, SIZES[kind], "big")


def scaled(raw: float | int | None, sf: float | int | None) -> float | None:
    """raw × 10^sf, or None when either is unknown."""
    if raw is None or sf is None:
        return None
    return float(raw) * 10.0 ** int(sf)
