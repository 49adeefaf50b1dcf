"""The 704 setpoint path: one block write, a short read-back, the point-by-point fallback, scale-factor
refusals and quantisation towards zero, over the real Modbus simulator (TCP and RTU framing)."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from hal.clock import WallClock, utc_now
from hal.errors import InverterProtocolError, ModbusExceptionReply, SetpointNotAccepted
from hal.inverter import InverterSettings, codec
from hal.inverter.sunspec import SunSpecInverter
from hal.modbus import BusSettings, ModbusBus, TcpSettings
from tests.hal.conftest import FAST_BUS, SPEC, Monotonic, settings_for
from wattsmart_lab.sunspec_device import DER_MODELS, LEGACY_MODELS, SunSpecDevice
from wattsmart_lab.sunspec_server import SunSpecServer

# 704 offsets of the block the gateway writes (WSetEna..WSetRvrtTms) and of the revert timer's end.
BLOCK_FIRST, BLOCK_LAST, REM_LAST = 22, 32, 34


@contextlib.asynccontextmanager
async def sunspec(
    server: SunSpecServer, wall_clock: WallClock = utc_now, **kw: object
) -> AsyncIterator[SunSpecInverter]:
    """A bare SunSpec inverter on its own bus (no wrapper: this is the device code itself)."""
    settings = settings_for(server, **kw)
    assert settings.endpoint is not None
    bus = ModbusBus(settings.endpoint, settings.bus)
    inverter = SunSpecInverter(bus, settings, wall_clock=wall_clock, on_close=bus.close)
    try:
        yield inverter
    finally:
        await inverter.close()


def s32(value: int) -> list[int]:
    return codec.encode(value, "int32")


def u32(value: int) -> list[int]:
    return codec.encode(value, "uint32")


def counters(inverter: SunSpecInverter) -> tuple[int, int, int]:
    s = inverter.bus.stats
    return s.requests, s.tx_bytes, s.rx_bytes


def exchange_bytes(inverter: SunSpecInverter, *, write_regs: int, read_regs: int) -> tuple[int, int]:
    """Bytes of one FC16 write of `write_regs` and one FC03 read of `read_regs`, request and reply.

    RTU: unit id + PDU + CRC (e.g. FC03 of 10 registers is 8 + 25 bytes); TCP: 7-byte MBAP + PDU.
    """
    envelope = 7 if isinstance(inverter.bus.endpoint, TcpSettings) else 3
    write_request, write_reply = 6 + 2 * write_regs, 5  # fc, address, quantity, byte count, data
    read_request, read_reply = 5, 2 + 2 * read_regs  # fc, byte count, data
    return write_request + read_request + 2 * envelope, write_reply + read_reply + 2 * envelope


@pytest.mark.parametrize("mode", ["watts", "percent"])
async def test_setpoint_is_one_block_write_and_a_short_read_back(
    any_server: SunSpecServer, sim_clock: Monotonic, mode: str
) -> None:
    dev = any_server.device
    async with sunspec(any_server, setpoint_mode=mode, revert_timeout_s=30.0) as inverter:
        await inverter.set_active_power(1000.0)  # first use: reads the control block once
        for watts in (-2500.0, 3000.0, 1234.0):
            before, writes = counters(inverter), len(dev.writes)
            assert await inverter.set_active_power(watts) == pytest.approx(watts)
            after = counters(inverter)
            # Exactly one write (FC16 of offsets 22..32) and one read-back (enable, mode, value).
            read_regs = 4 if mode == "watts" else 7  # 22..25 (WSet) or 22..28 (WSetPct)
            tx, rx = exchange_bytes(inverter, write_regs=11, read_regs=read_regs)
            assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (2, tx, rx)
            [record] = dev.writes[writes:]
            assert record.address == dev.address(704, "WSetEna")
            if mode == "watts":
                value, pct = s32(round(watts)), [0]
            else:
                value, pct = (
                    s32(0),
                    codec.encode(round(watts / 5000.0 * 100 * 100), "int16"),
                )  # WSetPct_SF -2 of WMax 5000
            mod = 1 if mode == "watts" else 0
            assert record.values == [1, mod, *value, 0, 0, *pct, 0, 0, *u32(30)]
            sim_clock.advance(5)
            assert (await inverter.read_telemetry()).w == pytest.approx(watts, abs=0.5)
        assert dev.get(704, "WSetRvrtRem") == 25


async def test_keepalive_rewrites_the_block_and_reads_the_timer(
    any_server: SunSpecServer, sim_clock: Monotonic
) -> None:
    dev = any_server.device
    async with sunspec(any_server, revert_timeout_s=30.0) as inverter:
        await inverter.set_active_power(2000.0)
        sim_clock.advance(20)
        before, writes = counters(inverter), len(dev.writes)
        await inverter.keepalive()
        after = counters(inverter)
        tx, rx = exchange_bytes(inverter, write_regs=11, read_regs=REM_LAST - BLOCK_FIRST + 1)
        assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (2, tx, rx)
        [record] = dev.writes[writes:]
        assert record.values == [1, 1, *s32(2000), 0, 0, 0, 0, 0, *u32(30)]
        assert dev.get(704, "WSetRvrtRem") == 30
        # Silence: the device still reverts by itself after the timer.
        sim_clock.advance(31)
        assert (await inverter.read_telemetry()).w == 0.0
        assert dev.get(704, "WSetEna") == 0


async def test_control_block_is_read_again_after_an_error(tcp_server: SunSpecServer) -> None:
    async with sunspec(tcp_server) as inverter:
        await inverter.read_telemetry()  # discovery and ratings out of the way
        before = counters(inverter)[0]
        await inverter.set_active_power(1000.0)
        assert counters(inverter)[0] - before == 3  # control block, write, read-back
        before = counters(inverter)[0]
        await inverter.set_active_power(1100.0)
        assert counters(inverter)[0] - before == 2
        tcp_server.faults.ignore_writes = True
        with pytest.raises(SetpointNotAccepted):
            await inverter.set_active_power(1200.0)
        tcp_server.faults.ignore_writes = False
        before = counters(inverter)[0]
        assert await inverter.set_active_power(1200.0) == 1200.0
        assert counters(inverter)[0] - before == 3


async def test_control_block_is_read_again_after_a_map_rediscovery(tcp_server: SunSpecServer) -> None:
    dev = tcp_server.device
    async with sunspec(tcp_server) as inverter:
        await inverter.set_active_power(1000.0)
        # A firmware update: the map moves (a read answers "illegal address") and WSet_SF changes.
        tcp_server.faults.exception_code = 2
        with pytest.raises(ModbusExceptionReply):
            await inverter.read_telemetry()
        tcp_server.faults.exception_code = None
        dev.set(704, "WSet_SF", 1)
        assert await inverter.set_active_power(1234.0) == 1230.0
        assert dev.get(704, "WSet") == 123


async def test_keepalive_reads_the_control_block_again_after_ten_minutes(tcp_server: SunSpecServer) -> None:
    now = [datetime(2026, 12, 5, tzinfo=UTC)]
    dev = tcp_server.device
    async with sunspec(tcp_server, wall_clock=lambda: now[0]) as inverter:
        await inverter.set_active_power(1000.0)
        for minutes in (3, 6, 9):
            now[0] += timedelta(minutes=3)
            before = counters(inverter)[0]
            await inverter.keepalive()
            assert counters(inverter)[0] - before == 2, minutes
        # A firmware update changes WSet_SF (the map stays put): the next keepalive past ten minutes sees it.
        dev.set(704, "WSet_SF", 3)
        now[0] += timedelta(minutes=1)
        writes = len(dev.writes)
        with pytest.raises(InverterProtocolError, match=r"704\.WSet_SF = 3"):
            await inverter.keepalive()
        assert len(dev.writes) == writes  # refused before any write; the device's timer reverts it


@pytest.mark.parametrize(
    "fault",
    ["no_reversion_points", "fc16_limit"],
)
async def test_device_refusing_the_block_gets_point_writes_from_then_on(
    any_server: SunSpecServer, sim_clock: Monotonic, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    dev = any_server.device
    if fault == "no_reversion_points":
        dev.unimplement(704, "WSetRvrt", "WSetPctRvrt", "WSetEnaRvrt", "WSetRvrtTms", "WSetRvrtRem")
    else:
        any_server.faults.max_write_registers = 2
    caplog.set_level(logging.WARNING)
    async with sunspec(any_server, revert_timeout_s=30.0) as inverter:
        for watts in (1000.0, -1500.0, 2500.0):
            assert await inverter.set_active_power(watts) == watts
            sim_clock.advance(5)
            assert (await inverter.read_telemetry()).w == pytest.approx(watts)
        await inverter.keepalive()
    assert dev.get(704, "WSet") == 2500 and dev.get(704, "WSetEna") == 1
    # Only single points were ever written (a refused write leaves no record).
    assert dev.writes and all(len(w.values) <= 2 for w in dev.writes)
    assert dev.writes[-1].address == dev.address(704, "WSetEna")
    fallbacks = [r for r in caplog.records if "rejects one write of the 704 WSet block" in r.getMessage()]
    assert len(fallbacks) == 1
    if fault == "no_reversion_points":
        assert len([r for r in caplog.records if "will NOT revert" in r.getMessage()]) == 1
    else:
        assert dev.get(704, "WSetRvrtTms") == 30  # point by point, the reversion is still armed
        sim_clock.advance(31)
        assert dev.get(704, "WSetEna") == 1
        await tcp_or_rtu_read(any_server)
        assert dev.get(704, "WSetEna") == 0


async def tcp_or_rtu_read(server: SunSpecServer) -> None:
    """One request to the simulator, so that it advances its clock."""
    async with sunspec(server) as inverter:
        await inverter.read_telemetry()


def _set_word(dev: SunSpecDevice, model_id: int, name: str, word: int) -> None:
    dev.regs[dev.address(model_id, name) - dev.base] = word


@pytest.mark.parametrize(
    ("legacy", "mode", "point", "word", "shown"),
    [
        (False, "watts", "WSet_SF", 3, "= 3"),
        (False, "watts", "WSet_SF", 10, "= 10"),
        (False, "watts", "WSet_SF", 0x8000, "= 0x8000 (not implemented)"),
        (False, "watts", "WSet_SF", 0x7FFF, "= 32767"),
        (False, "percent", "WSetPct_SF", 1, "= 1"),
        (False, "percent", "WSetPct_SF", 0x8000, "= 0x8000 (not implemented)"),
        (True, "watts", "InOutWRte_SF", 1, "= 1"),
        (True, "watts", "InOutWRte_SF", 0x8000, "= 0x8000 (not implemented)"),
    ],
)
async def test_implausible_setpoint_scale_factor_writes_nothing(
    sim_clock: Monotonic, legacy: bool, mode: str, point: str, word: int, shown: str
) -> None:
    models = LEGACY_MODELS if legacy else DER_MODELS
    model_id = 124 if legacy else 704
    async with SunSpecServer(SPEC, clock=sim_clock, models=models) as server:
        _set_word(server.device, model_id, point, word)
        async with sunspec(server, setpoint_mode=mode) as inverter:
            for _ in range(2):  # also on the second try: nothing is cached from a refusal
                with pytest.raises(InverterProtocolError) as raised:
                    await inverter.set_active_power(2000.0)
                assert f"{model_id}.{point} {shown}" in str(raised.value)
        assert server.device.writes == []
        assert server.device.battery.target_w is None


@pytest.mark.parametrize(
    ("legacy", "mode", "point", "sf", "asked", "held", "raw_point", "raw"),
    [
        # 100-W steps: 4950 W is 4900, never 5000; the same towards zero when charging.
        (False, "watts", "WSet_SF", 2, 4950.0, 4900.0, "WSet", 49),
        (False, "watts", "WSet_SF", 2, -3950.0, -3900.0, "WSet", -39),
        (False, "watts", "WSet_SF", 2, 4999.99, 4900.0, "WSet", 49),
        (False, "watts", "WSet_SF", 0, 1234.7, 1234.0, "WSet", 1234),
        # 1-% steps of WMax 5000 W: 4990 W (99.8 %) is 99 %, not 100 %.
        (False, "percent", "WSetPct_SF", 0, 4990.0, 4950.0, "WSetPct", 99),
        (False, "percent", "WSetPct_SF", 0, -3990.0, -3950.0, "WSetPct", -79),
        (False, "percent", "WSetPct_SF", -2, 1234.8, 1234.5, "WSetPct", 2469),
        # 124: 1-% steps of WChaMax 4000 W.
        (True, "watts", "InOutWRte_SF", 0, 3990.0, 3960.0, "OutWRte", 99),
        (True, "watts", "InOutWRte_SF", 0, -3990.0, -3960.0, "OutWRte", -99),
    ],
)
async def test_quantisation_never_exceeds_the_request(
    sim_clock: Monotonic,
    legacy: bool,
    mode: str,
    point: str,
    sf: int,
    asked: float,
    held: float,
    raw_point: str,
    raw: int,
) -> None:
    models = LEGACY_MODELS if legacy else DER_MODELS
    model_id = 124 if legacy else 704
    async with SunSpecServer(SPEC, clock=sim_clock, models=models) as server:
        server.device.set(model_id, point, sf)
        async with sunspec(server, setpoint_mode=mode) as inverter:
            assert await inverter.set_active_power(asked) == pytest.approx(held)
        assert server.device.get(model_id, raw_point) == raw


async def test_random_setpoints_never_round_up(tcp_server: SunSpecServer) -> None:
    rng = random.Random(12)
    tcp_server.device.set(704, "WSet_SF", 1)
    async with sunspec(tcp_server) as inverter:
        for _ in range(40):
            asked = rng.uniform(-3999.0, 4999.0)
            held = await inverter.set_active_power(asked)
            written = tcp_server.device.get(704, "WSet")
            assert written is not None and held == pytest.approx(written * 10.0)
            assert abs(held) <= abs(asked) and abs(asked) - abs(held) < 10.0
            assert (held >= 0) == (asked >= 0) or held == 0


async def test_a_setpoint_that_does_not_fit_the_register_writes_nothing(tcp_server: SunSpecServer) -> None:
    tcp_server.device.set(704, "WSet_SF", -10)  # legal SF, but 1000 W is 1e13 steps: beyond int32
    async with sunspec(tcp_server) as inverter:
        with pytest.raises(InverterProtocolError, match=r"does not fit 704\.WSet"):
            await inverter.set_active_power(1000.0)
    assert tcp_server.device.writes == []


async def test_simulator_takes_block_writes_as_a_real_device(
    tcp_server: SunSpecServer, sim_clock: Monotonic
) -> None:
    dev = tcp_server.device
    start = dev.layout[704]
    settings = settings_for(tcp_server)
    assert isinstance(settings, InverterSettings) and settings.tcp is not None
    bus = ModbusBus(settings.tcp, BusSettings(timeout_s=FAST_BUS.timeout_s, inter_frame_gap_s=0.0))
    try:
        block = [1, 1, *s32(1500), *s32(0), 0, 0, 0, *u32(20)]
        # Including the read-only WSetRvrtRem (33..34), or a scale factor: refused whole.
        with pytest.raises(ModbusExceptionReply) as refused:
            await bus.write(start + BLOCK_FIRST, [*block, 0, 0], 1)
        assert refused.value.code == 2
        with pytest.raises(ModbusExceptionReply):
            await bus.write(dev.address(704, "WSet_SF"), [0], 1)
        # An enum outside 0/1 is an illegal value.
        with pytest.raises(ModbusExceptionReply) as refused:
            await bus.write(start + BLOCK_FIRST, [2, *block[1:]], 1)
        assert refused.value.code == 3
        assert dev.writes == [] and dev.get(704, "WSetEna") == 0
        # The block itself is taken at once, and its reversion holds.
        await bus.write(start + BLOCK_FIRST, block, 1)
        assert bus.stats.requests == 4
        sim_clock.advance(10)
        assert await bus.read(start + 33, 2, 1) == u32(10)
        assert dev.battery.power_w == 1500.0
        sim_clock.advance(11)
        await bus.read(start + 22, 1, 1)
        assert dev.get(704, "WSetEna") == 0 and dev.battery.target_w is None
    finally:
        await bus.close()


@pytest.mark.parametrize(
    ("wire_bytes", "baud", "floor_ms"),
    # field-notes' frame-time table: FC16 of 1 register, FC03 of 10, 59 and 125 registers.
    [(19, 9600, 29.8), (19, 19200, 14.9), (33, 9600, 45.8), (131, 9600, 158.0), (263, 19200, 155.0)],
)
def test_bench_frame_time_floor_matches_the_serial_line_numbers(
    wire_bytes: int, baud: int, floor_ms: float
) -> None:
    from bench.bench_setpoint_bus import Frames

    assert Frames(1, wire_bytes).floor_s(baud) * 1000 == pytest.approx(floor_ms, abs=0.5)


async def test_a_device_failure_on_the_block_write_does_not_switch_to_point_writes(
    tcp_server: SunSpecServer,
) -> None:
    dev = tcp_server.device
    async with sunspec(tcp_server) as inverter:
        await inverter.set_active_power(1000.0)
        tcp_server.faults.exception_code = 4  # transient device failure, not a refusal of the block
        with pytest.raises(ModbusExceptionReply):
            await inverter.set_active_power(1500.0)
        tcp_server.faults.exception_code = None
        writes = len(dev.writes)
        assert await inverter.set_active_power(1500.0) == 1500.0
        [record] = dev.writes[writes:]
        assert len(record.values) == BLOCK_LAST - BLOCK_FIRST + 1
