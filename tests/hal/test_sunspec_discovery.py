"""SunSpec discovery variants, legacy fallback, and pysunspec2's scanner as an independent oracle."""

from __future__ import annotations

import asyncio

import pytest

from hal.errors import ProfileError
from hal.inverter import open_inverter
from hal.inverter.sunspec import SunSpecInverter
from tests.hal.conftest import SPEC, Monotonic, settings_for
from wattsmart_lab.sunspec_device import LEGACY_MODELS
from wattsmart_lab.sunspec_server import SunSpecServer


@pytest.mark.parametrize("base", [0, 50000])
async def test_marker_at_other_bases(sim_clock: Monotonic, base: int) -> None:
    async with (
        SunSpecServer(SPEC, clock=sim_clock, base=base) as server,
        open_inverter(settings_for(server), auto_keepalive=False) as inverter,
    ):
        device = inverter.inner  # the device behind the guard
        assert isinstance(device, SunSpecInverter)
        assert (await device.sunspec_map()).base == base
        assert (await inverter.read_telemetry()).soc_pct == 50.0


async def test_map_without_end_marker_ends_at_illegal_address(sim_clock: Monotonic) -> None:
    async with (
        SunSpecServer(SPEC, clock=sim_clock, end_marker=False) as server,
        open_inverter(settings_for(server), auto_keepalive=False) as inverter,
    ):
        device = inverter.inner  # the device behind the guard
        assert isinstance(device, SunSpecInverter)
        assert (await device.sunspec_map()).ids == [1, 701, 702, 704, 713]


async def test_no_marker_is_a_profile_error(sim_clock: Monotonic) -> None:
    async with (
        SunSpecServer(SPEC, clock=sim_clock, base=1000) as server,
        open_inverter(settings_for(server), auto_keepalive=False) as inverter,
    ):
        with pytest.raises(ProfileError, match="SunS"):
            await inverter.read_telemetry()


async def test_model_802_soc_when_713_absent(sim_clock: Monotonic) -> None:
    async with (
        SunSpecServer(SPEC, clock=sim_clock, models=(1, 701, 702, 704, 802)) as server,
        open_inverter(settings_for(server), auto_keepalive=False) as inverter,
    ):
        assert (await inverter.read_telemetry()).soc_pct == 50.0
        assert (await inverter.read_ratings()).energy_capacity_wh == 10000.0


async def test_legacy_fallback(any_server_legacy: SunSpecServer, sim_clock: Monotonic) -> None:
    server = any_server_legacy
    settings = settings_for(server, revert_timeout_s=30.0)
    async with open_inverter(settings, auto_keepalive=False) as inverter:
        device = inverter.inner  # the device behind the guard
        assert isinstance(device, SunSpecInverter)
        assert (await device.sunspec_map()).ids == list(LEGACY_MODELS)
        ratings = await inverter.read_ratings()
        assert (ratings.max_w, ratings.max_charge_w, ratings.energy_capacity_wh) == (5000.0, 4000.0, 10000.0)
        t = await inverter.read_telemetry()
        assert (t.w, t.soc_pct, t.connection) == (0.0, 50.0, None)
        assert t.hz is not None and 59.9 < t.hz < 60.1
        assert await inverter.set_active_power(2000.0) == pytest.approx(2000.0)
        assert server.device.get(124, "InOutWRte_RvrtTms") == 30
        sim_clock.advance(10)
        assert (await inverter.read_telemetry()).w == pytest.approx(2000.0)
        assert await inverter.set_active_power(-1000.0) == pytest.approx(-1000.0)
        sim_clock.advance(10)
        assert (await inverter.read_telemetry()).w == pytest.approx(-1000.0)
        await inverter.keepalive()
        sim_clock.advance(25)
        assert (await inverter.read_telemetry()).w == pytest.approx(-1000.0)
        sim_clock.advance(10)  # no refresh: 124's reversion timer hands the battery back
        assert (await inverter.read_telemetry()).w == 0.0
        await inverter.set_active_power(500.0)
        await inverter.release()
        assert server.device.get(124, "StorCtl_Mod") == 0


async def test_pysunspec2_scans_our_simulator(tcp_server: SunSpecServer, sim_clock: Monotonic) -> None:
    client = pytest.importorskip("sunspec2.modbus.client")
    async with open_inverter(settings_for(tcp_server), auto_keepalive=False) as inverter:
        await inverter.set_active_power(-3000.0)
    sim_clock.advance(3)

    def scan() -> dict[str, object]:
        device = client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=tcp_server.port)
        try:
            device.scan()
            return {
                "ids": [m for m in device.models if isinstance(m, int)],
                "W": device.DERMeasureAC[0].W.cvalue,
                "Hz": device.DERMeasureAC[0].Hz.cvalue,
                "SoC": device.DERStorageCapacity[0].SoC.cvalue,
                "WHRtg": device.DERStorageCapacity[0].WHRtg.cvalue,
                "WMaxRtg": device.DERCapacity[0].WMaxRtg.cvalue,
                "WSet": device.DERCtlAC[0].WSet.cvalue,
                "WSetEna": device.DERCtlAC[0].WSetEna.value,
                "Mn": device.common[0].Mn.value,
            }
        finally:
            device.close()

    result = await asyncio.to_thread(scan)
    assert result["ids"] == [1, 701, 702, 704, 713]
    assert result["W"] == -3000
    hz = result["Hz"]
    assert isinstance(hz, float) and 59.9 < hz < 60.1
    soc = result["SoC"]
    assert isinstance(soc, float) and 50.0 <= soc <= 50.1
    assert (result["WHRtg"], result["WMaxRtg"], result["WSet"], result["WSetEna"]) == (10000, 5000, -3000, 1)
    assert result["Mn"] == "Wattsmart"


def test_point_table_matches_pysunspec2_definitions() -> None:
    device = pytest.importorskip("sunspec2.device")
    from hal.inverter.sunspec_points import LENGTHS, POINTS

    for model_id, points in POINTS.items():
        model = device.Model(model_id=model_id)
        assert len(model.get_mb()) // 2 - 2 == LENGTHS[model_id], model_id
        offsets: dict[str, int] = {}
        offset = 0
        for name, pt in model.points.items():
            offsets[name] = offset
            offset += pt.len
        for name, pt in points.items():
            assert offsets[name] == pt.offset, f"{model_id}.{name}"
            if not pt.kind.startswith("string"):
                assert model.points[name].pdef["type"] == pt.kind, f"{model_id}.{name}"


def test_simulator_writable_points_match_pysunspec2_access() -> None:
    device = pytest.importorskip("sunspec2.device")
    from hal.inverter.sunspec_points import POINTS
    from wattsmart_lab.sunspec_device import WRITABLE

    for model_id, points in POINTS.items():
        model = device.Model(model_id=model_id)
        writable = {name for name in points if model.points[name].pdef.get("access", "R") == "RW"}
        assert writable == set(WRITABLE.get(model_id, ())), model_id
