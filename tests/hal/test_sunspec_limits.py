"""Limits as limits: a discharge cap written as 704 WMaxLimPct with its reversion timer, the battery in its
own mode under it; what the device cannot hold as a limit is refused with nothing written. Over the
real Modbus simulator (TCP and RTU framing), and through the guard that holds caps to the ratings."""

from __future__ import annotations

import pytest

from hal.inverter import codec
from hal.inverter.guard import SafeInverter
from hal.inverter.settings import Nameplate
from tests.hal.conftest import SPEC, Monotonic
from tests.hal.test_sunspec_setpoint import counters, exchange_bytes, sunspec
from wattsmart_lab.sunspec_server import SunSpecServer

# the simulator's 704.WMaxLimPct_SF: tenths of a percent of WMax (5000 W)
TENTHS = 10


async def test_a_discharge_cap_is_held_by_the_device_over_its_own_mode(
    any_server: SunSpecServer, sim_clock: Monotonic
) -> None:
    dev = any_server.device
    dev.battery.own_w = 4000.0  # the battery's own mode covers a house load
    async with sunspec(any_server, revert_timeout_s=30.0) as inverter:
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == pytest.approx(4000)
        writes = len(dev.writes)
        assert await inverter.apply_limits(1500.0, None) is True
        [record] = dev.writes[writes:]
        assert record.address == dev.address(704, "WMaxLimPctEna")
        # enable, 30.0 %, reversion value 100 %, reversion disabled (own mode), timer 30 s
        assert record.values == [1, 30 * TENTHS, 100 * TENTHS, 0, *codec.encode(30, "uint32")]
        assert dev.get(704, "WSetEna") == 0  # no setpoint: the battery keeps its own mode
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == pytest.approx(1500)
        dev.battery.own_w = 800.0  # under the cap its own mode goes on
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == pytest.approx(800)
        dev.battery.own_w = 4000.0
        sim_clock.advance(20)
        before = counters(inverter)
        assert await inverter.apply_limits(1500.0, None) is True  # a refresh restarts the timer
        # one FC16 of WMaxLimPctEna..WMaxLimPctRvrtTms (6 registers), one read-back (to ...RvrtRem)
        after = counters(inverter)
        tx, rx = exchange_bytes(inverter, write_regs=6, read_regs=8)
        assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (2, tx, rx)
        sim_clock.advance(20)
        assert (await inverter.read_telemetry()).w == pytest.approx(1500)
        assert dev.get(704, "WMaxLimPctRvrtRem") == 10
        # silence: the device drops the limit by itself after the timer
        sim_clock.advance(11)
        assert (await inverter.read_telemetry()).w == pytest.approx(4000)
        assert dev.get(704, "WMaxLimPctEna") == 0

        assert await inverter.apply_limits(1000.0, None) is True
        await inverter.release()
        assert dev.get(704, "WMaxLimPctEna") == 0 and dev.get(704, "WSetEna") == 0
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == pytest.approx(4000)


async def test_a_setpoint_gives_way_to_limits_and_quantisation_is_never_looser(
    tcp_server: SunSpecServer, sim_clock: Monotonic
) -> None:
    dev = tcp_server.device
    async with sunspec(tcp_server) as inverter:
        await inverter.set_active_power(-2000.0)
        assert dev.get(704, "WSetEna") == 1
        assert await inverter.apply_limits(1234.9, None) is True
        assert dev.get(704, "WSetEna") == 0  # limits only
        assert dev.get(704, "WMaxLimPct") == 246  # 24.698 % -> 24.6 %, never above the cap
        assert await inverter.apply_limits(None, None) is True  # no cap at all
        assert dev.get(704, "WMaxLimPctEna") == 0
        assert await inverter.apply_limits(0.0, None) is True
        assert dev.get(704, "WMaxLimPct") == 0


async def test_a_charge_cap_is_refused_by_704_with_nothing_written(tcp_server: SunSpecServer) -> None:
    dev = tcp_server.device
    async with sunspec(tcp_server) as inverter:
        await inverter.read_ratings()
        writes = len(dev.writes)
        assert await inverter.apply_limits(1500.0, 2000.0) is False  # 704 caps no charge
        assert await inverter.apply_limits(None, 2000.0) is False
        assert len(dev.writes) == writes


async def test_a_legacy_device_holds_both_caps_as_124_rate_limits(
    any_server_legacy: SunSpecServer, sim_clock: Monotonic
) -> None:
    dev = any_server_legacy.device
    dev.battery.own_w = 4000.0
    async with sunspec(any_server_legacy, revert_timeout_s=30.0) as inverter:
        assert await inverter.apply_limits(1500.0, 2000.0) is True
        # percent of WChaMax (4000 W) in hundredths (InOutWRte_SF -2): 37.5 % and 50 %
        assert (dev.get(124, "StorCtl_Mod"), dev.get(124, "OutWRte"), dev.get(124, "InWRte")) == (
            3,
            3750,
            5000,
        )
        assert dev.get(124, "InOutWRte_RvrtTms") == 30
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == pytest.approx(1500)
        dev.battery.own_w = -3500.0  # its own mode charges: capped at 2000 W
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == pytest.approx(-2000)
        assert await inverter.apply_limits(None, 1000.0) is True  # a charge cap alone: bit 0 only
        assert dev.get(124, "StorCtl_Mod") == 1
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == pytest.approx(-1000)
        sim_clock.advance(31)  # silence: the device drops the limits by itself
        assert (await inverter.read_telemetry()).w == pytest.approx(-3500)
        assert dev.get(124, "StorCtl_Mod") == 0
        assert await inverter.apply_limits(1500.0, None) is True
        await inverter.release()
        assert dev.get(124, "StorCtl_Mod") == 0


async def test_a_device_without_the_points_is_asked_once(
    tcp_server: SunSpecServer, caplog: pytest.LogCaptureFixture
) -> None:
    dev = tcp_server.device
    dev.unimplement(704, "WMaxLimPctEna", "WMaxLimPct", "WMaxLimPctRvrt", "WMaxLimPctEnaRvrt")
    async with sunspec(tcp_server) as inverter:
        assert await inverter.apply_limits(1500.0, None) is False
        writes = len(dev.writes)
        assert await inverter.apply_limits(1500.0, None) is False
        assert len(dev.writes) == writes
    assert sum("no usable 704 WMaxLimPct" in r.getMessage() for r in caplog.records) == 1


async def test_the_guard_holds_caps_to_the_ratings_and_nameplate(
    tcp_server: SunSpecServer, sim_clock: Monotonic
) -> None:
    dev = tcp_server.device
    async with sunspec(tcp_server) as device:
        guarded = SafeInverter(device, Nameplate(max_discharge_w=3000.0, max_charge_w=3000.0))
        assert await guarded.apply_limits(9000.0, None) is True  # looser than the nameplate
        assert dev.get(704, "WMaxLimPct") == 60 * TENTHS  # 3000 W of WMax 5000
        assert await guarded.apply_limits(-50.0, None) is True  # below zero: no discharge
        assert dev.get(704, "WMaxLimPct") == 0
        assert SPEC.max_w == 5000.0
