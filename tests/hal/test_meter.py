"""The site meter over real Modbus TCP: SunSpec 203 discovered on the inverters' bus, signed as export."""

from __future__ import annotations

import pytest

from hal.errors import InverterUnreachable
from hal.inverter.factory import connect_site
from hal.inverter.modbus_inverter import connect_meter
from hal.meter import MeterRegister
from hal.modbus import TcpSettings
from tests.hal.conftest import FAST_BUS, Monotonic
from tests.hal.test_site import BIG, SMALL, member_settings
from wattsmart_lab.meter_sim import household_load_w
from wattsmart_lab.sunspec_server import SunSpecServer


def test_the_household_load_moves_over_a_day() -> None:
    night, morning, evening = (household_load_w(h * 3600.0 + 600) for h in (3, 7.5, 19))
    assert 250 < night < 400 and morning > night + 800 and evening > morning
    assert household_load_w(0.0) - household_load_w(600.0) == pytest.approx(2000.0, abs=50)  # the kettle


async def test_meter_sees_load_minus_batteries(sim_clock: Monotonic) -> None:
    load = {"w": 800.0}
    async with SunSpecServer.site(
        [BIG, SMALL], clock=sim_clock, meter_id=10, load=lambda _t: load["w"]
    ) as server:
        link = TcpSettings("127.0.0.1", server.port)
        meter = connect_meter(link, FAST_BUS, 10)
        site = await connect_site([member_settings(server, 1), member_settings(server, 2)])
        try:
            first = await meter.read()
            assert first.export_w == -800.0  # importing the load
            assert first.hz == 60.0
            await site.set_active_power(3000.0)
            sim_clock.advance(1)
            load["w"] = 1200.0
            assert (await meter.read()).export_w == 3000.0 - 1200.0
            server.meters[10].faults.silent = True
            with pytest.raises(InverterUnreachable):
                await meter.read()
        finally:
            await site.close()
            await meter.close()


async def test_a_meter_counting_export_positive(sim_clock: Monotonic) -> None:
    async with SunSpecServer.site([BIG], clock=sim_clock, meter_id=5, load=lambda _t: 500.0) as server:
        meter = connect_meter(TcpSettings("127.0.0.1", server.port), FAST_BUS, 5, import_positive=False)
        try:
            assert (await meter.read()).export_w == 500.0
        finally:
            await meter.close()


async def test_a_register_table_meter_reads_its_one_register(sim_clock: Monotonic) -> None:
    async with SunSpecServer.site([BIG], clock=sim_clock, meter_id=7, load=lambda _t: 640.0) as server:
        sim = server.meters[7]
        # the simulated meter's W point, read as a vendor map would give it: int16, 0.5 W per count
        register = MeterRegister(sim.layout[203] + 18, "int16", scale=0.5)
        meter = connect_meter(TcpSettings("127.0.0.1", server.port), FAST_BUS, 7, register=register)
        try:
            reading = await meter.read()
            assert reading.export_w == -320.0 and reading.hz is None
        finally:
            await meter.close()
    with pytest.raises(ValueError, match="type must be"):
        MeterRegister(1, "uint64")
