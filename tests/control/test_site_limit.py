"""An export limit held at the grid connection point by the site meter, stepped with literal times
over the real Modbus simulator (two inverters and a SunSpec meter on one TCP endpoint)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.config import ControlConfig
from app.control.executor import Executor
from app.control.modes import PowerCommand, combine
from app.control.site_limit import (
    METER_RETRY_S,
    ConnectionPoint,
    battery_charge_cap,
    battery_discharge_cap,
)
from app.health import Health
from app.meter import ObservedMeter
from app.sep.der import DERControlBase
from app.sep.types import ActivePower
from hal.inverter import SafeInverter
from hal.inverter.factory import connect_site
from hal.inverter.modbus_inverter import connect_meter
from hal.modbus import TcpSettings
from tests.hal.conftest import FAST_BUS, Monotonic
from tests.hal.test_site import BIG, SMALL, held_w, member_settings
from wattsmart_lab.sunspec_server import SunSpecServer

LIMIT = 1000.0
METER = 10


class Load:
    def __init__(self, watts: float) -> None:
        self.watts = watts

    def __call__(self, _now: float) -> float:
        return self.watts


@pytest.fixture
def sim_clock() -> Monotonic:
    return Monotonic()


@pytest.fixture
def load() -> Load:
    return Load(1500.0)


@pytest.fixture
async def server(sim_clock: Monotonic, load: Load) -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer.site([BIG, SMALL], clock=sim_clock, meter_id=METER, load=load) as srv:
        yield srv


@pytest.fixture
async def site(server: SunSpecServer) -> AsyncIterator[SafeInverter]:
    inverter = await connect_site([member_settings(server, 1), member_settings(server, 2)])
    async with inverter:
        yield inverter


@pytest.fixture
async def meter(server: SunSpecServer) -> AsyncIterator[ObservedMeter]:
    observed = ObservedMeter(connect_meter(TcpSettings("127.0.0.1", server.port), FAST_BUS, METER))
    yield observed
    await observed.close()


def battery(server: SunSpecServer) -> float:
    return held_w(server, 1) + held_w(server, 2)


def export(server: SunSpecServer) -> float:
    return server.meters[METER].site_export_w(server.clock())


def test_the_cap_is_the_limit_plus_what_the_site_draws_beyond_the_battery() -> None:
    # the battery gives 2000 W, the site exports 500 W: the house draws 1500 W
    assert battery_discharge_cap(1000.0, 500.0, 2000.0) == 2500.0
    assert battery_discharge_cap(1000.0, 3000.0, 0.0) == 0.0  # PV alone exports beyond it: no discharge
    # the battery takes 500 W, the site imports 2000 W: the house draws 1500 W
    assert battery_charge_cap(2000.0, -2000.0, -500.0) == 500.0
    assert battery_charge_cap(2000.0, -2500.0, 0.0) == 0.0  # the house alone imports beyond it


def test_the_command_keeps_the_export_limit_apart_from_the_generation_limit() -> None:
    exp = DERControlBase(opModExpLimW=ActivePower.from_watts(1000))
    gen = DERControlBase(opModGenLimW=ActivePower.from_watts(4000))
    command = combine({"ExpLimW": ("E", exp), "GenLimW": ("G", gen)}, None)
    assert command is not None
    assert (command.discharge_cap_w, command.export_limit_w, command.generation_limit_w) == (
        1000.0,
        1000.0,
        4000.0,
    )


async def test_export_limit_follows_the_load_then_falls_back_when_the_meter_is_silent(
    server: SunSpecServer, site: SafeInverter, meter: ObservedMeter, load: Load, sim_clock: Monotonic
) -> None:
    point = ConnectionPoint(meter)
    executor = Executor(site, ControlConfig(), Health(), connection_point=point)
    executor.command(PowerCommand("E", target_w=8000.0, discharge_cap_w=LIMIT, export_limit_w=LIMIT))
    now = 100.0

    async def step() -> float | None:
        nonlocal now
        due = await executor.step(now)
        assert due is not None
        sim_clock.advance(due - now)
        now = due
        return due

    # the first step reads the battery at 0 W: the house's 1500 W plus the limit
    await step()
    assert battery(server) == 2500.0 and export(server) == LIMIT
    for watts in (3000.0, 700.0, 2200.0, 4000.0):
        load.watts = watts
        await step()  # one meter cycle later the battery follows
        assert battery(server) == watts + LIMIT
        assert export(server) == LIMIT
    assert not point.battery_only

    server.meters[METER].faults.silent = True
    await step()
    assert point.battery_only
    assert battery(server) == LIMIT  # the battery alone holds the limit
    load.watts = 200.0
    await step()
    assert battery(server) == LIMIT and export(server) == LIMIT - 200.0

    server.meters[METER].faults.silent = False
    started = now
    while point.battery_only:
        await step()
        assert now - started <= METER_RETRY_S + 10
    assert battery(server) == 200.0 + LIMIT


async def test_import_limit_holds_at_the_connection_point(
    server: SunSpecServer, site: SafeInverter, meter: ObservedMeter, load: Load, sim_clock: Monotonic
) -> None:
    limit = 2000.0
    point = ConnectionPoint(meter)
    executor = Executor(site, ControlConfig(), Health(), connection_point=point)
    executor.command(PowerCommand("I", target_w=-8000.0, charge_cap_w=limit, import_limit_w=limit))
    now = 100.0
    for watts in (1500.0, 300.0, 1900.0):
        load.watts = watts
        due = await executor.step(now)
        assert due is not None
        sim_clock.advance(due - now)
        now = due
        assert battery(server) == -(limit - watts)  # charges what the import limit leaves
        assert export(server) == -limit
    server.meters[METER].faults.silent = True
    await executor.step(now)
    assert point.battery_only and battery(server) == -limit  # the battery alone holds it


async def test_an_export_limit_alone_caps_the_batteries_own_mode_at_the_connection_point(
    server: SunSpecServer, site: SafeInverter, meter: ObservedMeter, load: Load, sim_clock: Monotonic
) -> None:
    for unit in (1, 2):
        server.unit(unit).battery.own_w = 2500.0  # own mode: 5000 W in all, 3500 W over the house
    executor = Executor(site, ControlConfig(), Health(), connection_point=ConnectionPoint(meter))
    executor.command(PowerCommand("E", discharge_cap_w=LIMIT, export_limit_w=LIMIT))
    now = 100.0
    for watts in (1500.0, 3000.0, 2000.0):
        load.watts = watts
        for _ in range(2):  # the caps follow the meter: one step to see, one to settle
            due = await executor.step(now)
            assert due is not None and due - now <= 5.0
            sim_clock.advance(due - now)
            now = due
        # the own mode, capped by the inverters (their 0.1 % steps round each part down, never up)
        assert LIMIT - 10 <= export(server) <= LIMIT
        assert server.unit(1).get(704, "WSetEna") == server.unit(2).get(704, "WSetEna") == 0


async def test_without_an_export_limit_the_meter_changes_nothing(
    server: SunSpecServer, site: SafeInverter, meter: ObservedMeter
) -> None:
    executor = Executor(site, ControlConfig(), Health(), connection_point=ConnectionPoint(meter))
    executor.command(PowerCommand("E", target_w=3000.0))
    await executor.step(100.0)
    assert battery(server) == 3000.0
    assert meter.reading is None  # not even read
