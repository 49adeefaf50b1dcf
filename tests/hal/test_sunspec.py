"""The SunSpec profile against the Modbus simulator, over TCP and over RTU framing."""

from __future__ import annotations

import pytest

from hal.inverter import ConnectionStatus, OperatingStatus, open_inverter
from hal.inverter.sunspec import SunSpecInverter
from tests.hal.conftest import Monotonic, settings_for
from wattsmart_lab.sunspec_server import SunSpecServer


async def test_discovery_finds_der_models(any_server: SunSpecServer) -> None:
    async with open_inverter(settings_for(any_server), auto_keepalive=False) as inverter:
        device = inverter.inner  # the device behind the guard
        assert isinstance(device, SunSpecInverter)
        smap = await device.sunspec_map()
        assert smap.base == 40000
        assert smap.ids == [1, 701, 702, 704, 713]
        assert smap.models[701].start == 40070


async def test_ratings_and_telemetry(any_server: SunSpecServer) -> None:
    async with open_inverter(settings_for(any_server), auto_keepalive=False) as inverter:
        ratings = await inverter.read_ratings()
        assert (ratings.max_w, ratings.max_charge_w, ratings.max_discharge_w) == (5000.0, 4000.0, 5000.0)
        assert ratings.energy_capacity_wh == 10000.0
        assert ratings.set_max_w == 5000.0
        t = await inverter.read_telemetry()
        assert t.w == 0.0
        assert t.soc_pct == 50.0
        assert t.hz is not None and 59.9 < t.hz < 60.1
        assert t.connection is ConnectionStatus.CONNECTED
        assert t.operating is OperatingStatus.STANDBY


@pytest.mark.parametrize("mode", ["watts", "percent"])
@pytest.mark.parametrize("watts", [-2500.0, 3000.0])
async def test_setpoint_both_modes_both_directions(
    any_server: SunSpecServer, sim_clock: Monotonic, mode: str, watts: float
) -> None:
    settings = settings_for(any_server, setpoint_mode=mode, revert_timeout_s=30.0)
    async with open_inverter(settings, auto_keepalive=False) as inverter:
        held = await inverter.set_active_power(watts)
        assert held == pytest.approx(watts)
        dev = any_server.device
        assert dev.get(704, "WSetEna") == 1
        assert dev.get(704, "WSetMod") == (1 if mode == "watts" else 0)
        assert dev.get(704, "WSetRvrtTms") == 30
        assert dev.get(704, "WSetEnaRvrt") == 0
        # Enable is the last write of the sequence.
        assert dev.writes[-1].address == dev.address(704, "WSetEna")
        sim_clock.advance(10)
        t = await inverter.read_telemetry()
        assert t.w == pytest.approx(watts)
        assert t.operating is OperatingStatus.RUNNING
        assert t.soc_pct is not None and (t.soc_pct < 50.0) == (watts > 0)


async def test_setpoint_is_clamped_to_ratings(tcp_server: SunSpecServer) -> None:
    async with open_inverter(settings_for(tcp_server), auto_keepalive=False) as inverter:
        assert await inverter.set_active_power(-9000.0) == -4000.0
        assert await inverter.set_active_power(9000.0) == 5000.0


async def test_revert_timer_refresh_and_expiry(tcp_server: SunSpecServer, sim_clock: Monotonic) -> None:
    settings = settings_for(tcp_server, revert_timeout_s=30.0)
    async with open_inverter(settings, auto_keepalive=False) as inverter:
        await inverter.set_active_power(2000.0)
        sim_clock.advance(20)
        assert (await inverter.read_telemetry()).w == 2000.0
        assert tcp_server.device.get(704, "WSetRvrtRem") == 10
        await inverter.keepalive()
        assert tcp_server.device.get(704, "WSetRvrtRem") == 30
        sim_clock.advance(25)
        assert (await inverter.read_telemetry()).w == 2000.0
        # The gateway goes quiet: the device reverts to its own mode by itself.
        sim_clock.advance(10)
        assert (await inverter.read_telemetry()).w == 0.0
        assert tcp_server.device.get(704, "WSetEna") == 0


async def test_release_hands_back(tcp_server: SunSpecServer, sim_clock: Monotonic) -> None:
    async with open_inverter(settings_for(tcp_server), auto_keepalive=False) as inverter:
        await inverter.set_active_power(-1000.0)
        await inverter.release()
        sim_clock.advance(5)
        assert (await inverter.read_telemetry()).w == 0.0
        assert tcp_server.device.get(704, "WSetEna") == 0
        await inverter.keepalive()  # nothing active: no writes
        assert tcp_server.device.get(704, "WSetEna") == 0


async def test_device_without_reversion_points_is_still_controlled(
    tcp_server: SunSpecServer, caplog: pytest.LogCaptureFixture
) -> None:
    dev = tcp_server.device
    tms = dev.address(704, "WSetRvrtTms")
    tcp_server.faults.read_only = frozenset({tms, tms + 1})
    async with open_inverter(settings_for(tcp_server), auto_keepalive=False) as inverter:
        assert await inverter.set_active_power(1000.0) == 1000.0
        await inverter.set_active_power(1100.0)
    warnings = [r for r in caplog.records if "will NOT revert" in r.getMessage()]
    assert len(warnings) == 1
