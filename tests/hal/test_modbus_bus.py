"""The bus itself: sharing per physical link, argument checks, and the fail-fast budget."""

from __future__ import annotations

import time

import pytest

from hal.errors import ConfigurationError, InverterUnreachable
from hal.modbus import BusPool, BusSettings, ModbusBus, SerialSettings, TcpSettings, frame_bytes
from tests.hal.conftest import FAST_BUS


async def test_one_bus_per_physical_link() -> None:
    pool = BusPool()
    a = pool.acquire(SerialSettings("/dev/ttyUSB0", baudrate=9600), FAST_BUS)
    b = pool.acquire(SerialSettings("/dev/ttyUSB0", baudrate=9600), FAST_BUS)
    assert a is b
    with pytest.raises(ConfigurationError, match="different settings"):
        pool.acquire(SerialSettings("/dev/ttyUSB0", baudrate=19200), FAST_BUS)
    assert pool.acquire(TcpSettings("127.0.0.1", 1502), FAST_BUS) is not a
    await pool.release(a)
    await pool.release(b)
    assert pool.acquire(SerialSettings("/dev/ttyUSB0", baudrate=9600), FAST_BUS) is not a


async def test_refused_connection_fails_fast_then_backs_off() -> None:
    bus = ModbusBus(TcpSettings("127.0.0.1", 1), BusSettings(timeout_s=0.2, reconnect_min_s=5.0))
    started = time.monotonic()
    with pytest.raises(InverterUnreachable, match="cannot open"):
        await bus.read(0, 2, 1)
    with pytest.raises(InverterUnreachable, match="next attempt"):
        await bus.read(0, 2, 1)
    assert time.monotonic() - started < 1.0
    await bus.close()


async def test_request_size_is_checked() -> None:
    bus = ModbusBus(TcpSettings("127.0.0.1", 1))
    with pytest.raises(ValueError, match="count"):
        await bus.read(0, 126, 1)
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        await bus.write(0, [70000], 1)


def test_settings_and_frame_sizes() -> None:
    serial = SerialSettings("/dev/ttyAMA0", baudrate=9600, parity="E")
    assert serial.char_time_s() == pytest.approx(11 / 9600)
    assert ModbusBus(serial).gap_s == pytest.approx(0.02)
    assert frame_bytes(serial, 5) == 8  # read request: address + PDU + CRC
    assert frame_bytes(TcpSettings("h"), 5) == 12  # MBAP header + PDU
    with pytest.raises(ValueError, match="baudrate"):
        SerialSettings("/dev/ttyUSB0", baudrate=1234)
    with pytest.raises(ValueError, match="timeout_s"):
        BusSettings(timeout_s=0)
