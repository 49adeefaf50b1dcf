"""Every injected fault: the gateway sees "unknown" or "unreachable", never a wrong number, and recovers."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from hal.errors import (
    InverterBusy,
    InverterProtocolError,
    InverterUnreachable,
    ModbusExceptionReply,
    SetpointNotAccepted,
)
from hal.inverter import BatteryInverter, Telemetry, open_inverter
from hal.modbus import BusSettings
from tests.hal.conftest import FAST_BUS, SPEC, Monotonic, settings_for
from wattsmart_lab.sunspec_device import SunSpecDevice
from wattsmart_lab.sunspec_server import SunSpecServer


async def eventually_read(inverter: BatteryInverter, within_s: float = 3.0) -> Telemetry:
    """Poll until the device answers again (reconnect backoff is short in these tests)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await inverter.read_telemetry()
        except InverterUnreachable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_silent_device_fails_fast_and_recovers(any_server: SunSpecServer) -> None:
    async with open_inverter(settings_for(any_server), auto_keepalive=False) as inverter:
        assert (await inverter.read_telemetry()).soc_pct == 50.0
        any_server.faults.silent = True
        started = time.monotonic()
        with pytest.raises(InverterUnreachable):
            await inverter.read_telemetry()
        # 0.3 s timeout x 2 tries: a dead device costs well under the 12 s of pymodbus' defaults.
        assert time.monotonic() - started < 1.5
        any_server.faults.silent = False
        assert (await eventually_read(inverter)).soc_pct == 50.0


@pytest.mark.parametrize(("code", "error"), [(4, ModbusExceptionReply), (6, InverterBusy)])
async def test_exception_replies(any_server: SunSpecServer, code: int, error: type[Exception]) -> None:
    async with open_inverter(settings_for(any_server), auto_keepalive=False) as inverter:
        await inverter.read_telemetry()
        any_server.faults.exception_code = code
        with pytest.raises(error):
            await inverter.read_telemetry()
        with pytest.raises(error):
            await inverter.set_active_power(1000.0)
        any_server.faults.exception_code = None
        assert (await inverter.read_telemetry()).w == 0.0


async def test_slow_replies_never_yield_a_wrong_number(
    any_server: SunSpecServer, sim_clock: Monotonic
) -> None:
    # Default quiet time (= timeout): late replies arrive while nothing is outstanding and are dropped.
    bus = BusSettings(timeout_s=0.2, retries=1, inter_frame_gap_s=0.0, settle_after_connect_s=0.0)
    settings = settings_for(any_server, bus=bus)
    async with open_inverter(settings, auto_keepalive=False) as inverter:
        await inverter.set_active_power(-3000.0)
        any_server.faults.delay_s = 0.3
        with pytest.raises(InverterUnreachable):
            await inverter.inner.read_ratings()  # the device itself: the guard would answer from its copy
        any_server.faults.delay_s = 0.0
        sim_clock.advance(60)  # 50 Wh into 10 kWh: SoC 50.5 % at the device's 0.1 % resolution
        for _ in range(3):
            t = await eventually_read(inverter)
            assert t.w == -3000.0
            assert t.soc_pct is not None and 50.0 < t.soc_pct < 51.0
            ratings = await inverter.read_ratings()
            assert ratings.max_w == 5000.0


async def test_garbage_values_are_unknown(any_server: SunSpecServer) -> None:
    async with open_inverter(settings_for(any_server), auto_keepalive=False) as inverter:
        any_server.faults.garbage = True
        t = await inverter.read_telemetry()
        assert (t.w, t.hz, t.soc_pct) == (None, None, None)
        any_server.faults.garbage = False
        t = await inverter.read_telemetry()
        assert t.w == 0.0 and t.hz is not None and t.soc_pct == 50.0


async def test_cable_cut_and_restore(any_server: SunSpecServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hal.modbus")
    async with open_inverter(settings_for(any_server), auto_keepalive=False) as inverter:
        await inverter.read_telemetry()
        await any_server.cut()
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(InverterUnreachable):
                await inverter.read_telemetry()
            assert time.monotonic() - started < 1.5
        await any_server.restore()
        assert (await eventually_read(inverter)).soc_pct == 50.0
        await inverter.read_telemetry()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "hal.modbus"]
    back = [r for r in caplog.records if r.levelno == logging.INFO and r.name == "hal.modbus"]
    # Transitions, not repetitions.
    assert 1 <= len(errors) <= 2
    assert len(back) >= 1


async def test_ignored_write_is_detected(tcp_server: SunSpecServer) -> None:
    async with open_inverter(settings_for(tcp_server), auto_keepalive=False) as inverter:
        tcp_server.faults.ignore_writes = True
        with pytest.raises(SetpointNotAccepted):
            await inverter.set_active_power(1500.0)


async def test_dead_device_does_not_stall_live_one_on_rtu_bus(sim_clock: Monotonic) -> None:
    dead = SunSpecDevice(SPEC, device_id=2, base=40000, start=sim_clock())
    dead.faults.silent = True
    async with SunSpecServer(SPEC, clock=sim_clock, framing="rtu", extra_devices=[dead]) as server:
        live_settings = settings_for(server)
        dead_settings = settings_for(server, device_id=2)
        async with (
            open_inverter(live_settings, auto_keepalive=False) as live,
            open_inverter(dead_settings, auto_keepalive=False) as gone,
        ):
            with pytest.raises(InverterUnreachable):
                await gone.read_telemetry()
            assert (await live.read_telemetry()).soc_pct == 50.0
            with pytest.raises(InverterUnreachable):
                await gone.read_telemetry()
            assert (await live.read_telemetry()).soc_pct == 50.0


async def test_protocol_error_is_an_inverter_protocol_error() -> None:
    assert issubclass(ModbusExceptionReply, InverterProtocolError)
    assert FAST_BUS.call_budget_s() == pytest.approx(0.65)


async def test_release_after_a_cancelled_read_gets_its_own_reply_on_rtu(sim_clock: Monotonic) -> None:
    # SIGTERM cancels the telemetry read mid-request and the release goes out next. RTU replies carry
    # no transaction id: the read's late reply must not be taken for the release's.
    bus = BusSettings(timeout_s=0.5, retries=0, inter_frame_gap_s=0.0, settle_after_connect_s=0.0)
    async with (
        SunSpecServer(SPEC, clock=sim_clock, framing="rtu") as server,
        open_inverter(settings_for(server, bus=bus), auto_keepalive=False) as inverter,
    ):
        await inverter.set_active_power(-3000.0)
        server.faults.delay_s = 0.3  # every reply: one in flight when the read is cancelled
        read = asyncio.create_task(inverter.read_telemetry())
        await asyncio.sleep(0.1)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        await inverter.release()
        assert server.device.battery.target_w is None
