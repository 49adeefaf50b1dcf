"""RTU through real tty devices (a pty pair) at 9600 baud: the path closest to an RS-485 adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hal.errors import InverterUnreachable
from hal.inverter import InverterSettings, open_inverter
from hal.inverter.sunspec_server import SunSpecServer
from hal.modbus import SerialSettings
from tests.hal.conftest import FAST_BUS, SPEC, Monotonic
from tests.hal.pty_bridge import PtyBridge
from tests.hal.test_sunspec_faults import eventually_read


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
