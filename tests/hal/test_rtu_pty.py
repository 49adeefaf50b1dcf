"""RTU through real tty devices (a pty pair) at 9600 baud: the path closest to an RS-485 adapter."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from hal import rs485
from hal.errors import InverterUnreachable
from hal.inverter import InverterSettings, open_inverter
from hal.modbus import BusSettings, ModbusBus, SerialSettings
from hal.rs485 import Rs485Settings
from tests.hal.conftest import FAST_BUS, SPEC, Monotonic
from tests.hal.pty_bridge import PtyBridge
from tests.hal.test_sunspec_faults import eventually_read
from wattsmart_lab.sunspec_server import SunSpecServer


@pytest.fixture
async def cable() -> AsyncIterator[PtyBridge]:
    bridge = PtyBridge()
    bridge.start()
    yield bridge
    bridge.close()


async def test_sunspec_over_a_serial_line(cable: PtyBridge, sim_clock: Monotonic) -> None:
    async with SunSpecServer(SPEC, clock=sim_clock, framing="rtu", serial_port=cable.server_port) as server:
        settings = InverterSettings(
            transport="rtu", serial=SerialSettings(cable.client_port, baudrate=9600), bus=FAST_BUS
        )
        async with open_inverter(settings, auto_keepalive=False) as inverter:
            assert (await inverter.read_telemetry()).soc_pct == 50.0
            assert await inverter.set_active_power(-1200.0) == -1200.0
            sim_clock.advance(2)
            assert (await inverter.read_telemetry()).w == -1200.0
            cable.connected = False
            with pytest.raises(InverterUnreachable):
                await inverter.read_telemetry()
            cable.connected = True
            assert (await eventually_read(inverter)).w == -1200.0
            assert server.device.get(704, "WSetEna") == 1


def test_rs485_settings_pack_the_kernel_struct() -> None:
    packed = rs485.pack(Rs485Settings(delay_before_send_ms=1, delay_after_send_ms=2))
    flags, before, after, *padding = struct.unpack("=8I", packed)
    assert flags == rs485.SER_RS485_ENABLED | rs485.SER_RS485_RTS_ON_SEND
    assert (before, after, padding) == (1, 2, [0] * 5)
    inverted = Rs485Settings(rts_on_send=False, rts_after_send=True, rx_during_tx=True).flags()
    assert inverted == rs485.SER_RS485_ENABLED | rs485.SER_RS485_RTS_AFTER_SEND | rs485.SER_RS485_RX_DURING_TX
    with pytest.raises(ValueError, match="must differ"):
        Rs485Settings(rts_on_send=True, rts_after_send=True)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        Rs485Settings(delay_after_send_ms=500)


async def test_rs485_mode_on_a_port_without_it_is_one_clear_error(
    cable: PtyBridge, caplog: pytest.LogCaptureFixture
) -> None:
    # a pty has no RS-485 mode, like a UART driver without it: the real ioctl says so
    with pytest.raises(OSError, match="no kernel RS-485 mode"):
        rs485.apply(cable.client_port, Rs485Settings())
    serial = SerialSettings(cable.client_port, rs485=Rs485Settings())
    bus = ModbusBus(serial, BusSettings(timeout_s=0.2, reconnect_min_s=0.01, reconnect_max_s=0.01))
    for _ in range(3):
        with pytest.raises(InverterUnreachable):
            await bus.read(40000, 2, 1)
        await asyncio.sleep(0.02)
    errors = [r.getMessage() for r in caplog.records if "RS-485 mode" in r.getMessage()]
    assert len(errors) == 1 and cable.client_port in errors[0] and "inverter.serial.rs485" in errors[0]
    await bus.close()
