"""Register codec: types, word order, scale factors and "not implemented" sentinels."""

from __future__ import annotations

import pytest

from hal.inverter import codec


@pytest.mark.parametrize(
    ("words", "kind", "value"),
    [
        ([0x8000], "int16", None),
        ([0x8001], "int16", -32767),
        ([0xFFFF], "int16", -1),
        ([0xFFFF], "uint16", None),
        ([0xFFFF], "enum16", None),
        ([0xFFFF], "bitfield16", None),
        ([0x8000], "sunssf", None),
        ([0xFFFE], "sunssf", -2),
        ([0x7FFF], "sunssf", None),  # beyond SunSpec's -10..10: garbage
        ([0x8000, 0x0000], "int32", None),
        ([0xFFFF, 0xFFFF], "int32", -1),
        ([0xFFFF, 0xFFFF], "uint32", None),
        ([0x0000, 0xEA60], "uint32", 60000),
        ([0, 0], "acc32", 0),
        ([0x7FC0, 0x0000], "float32", None),  # NaN
        ([0x4248, 0x0000], "float32", 50.0),
    ],
)
def test_decode(words: list[int], kind: str, value: float | None) -> None:
    assert codec.decode(words, kind) == value


def test_word_order() -> None:
    assert codec.decode([0xEA60, 0x0000], "uint32", "little") == 60000
    assert codec.encode(-2, "int32", "little") == [0xFFFE, 0xFFFF]
    assert codec.encode(-2, "int32") == [0xFFFF, 0xFFFE]
    assert codec.unsigned([0x0001, 0x0002], "little") == 0x00020001


def test_encode_rounds_and_checks_range() -> None:
    assert codec.encode(-3000.4, "int16") == [0xF448]
    assert codec.encode(50.0, "float32") == [0x4248, 0x0000]
    with pytest.raises(ValueError, match="does not fit"):
        codec.encode(70000, "uint16")
    with pytest.raises(ValueError, match="does not fit"):
        codec.encode(-1, "uint32")


def test_scaled() -> None:
    assert codec.scaled(-1234, -1) == pytest.approx(-123.4)
    assert codec.scaled(49987, -3) == pytest.approx(49.987)
    assert codec.scaled(None, 0) is None
    assert codec.scaled(5, None) is None


def test_sentinel_words_round_trip() -> None:
    for kind in ("int16", "uint16", "int32", "uint32", "sunssf"):
        assert codec.decode(codec.sentinel_words(kind), kind) is None
