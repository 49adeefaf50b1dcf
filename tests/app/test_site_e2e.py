"""A whole site end to end: two inverters and a site meter on one Modbus TCP endpoint (unit ids 1, 2
and 10), the lab 2030.5 server over mutual TLS, the whole gateway in-process, all on 127.0.0.1.

The gateway samples every 5 s (the box: 30 s), so a "cycle" here is 5 s of real time. The export
limit's run waits for the silent meter to be tried again (30 s): `slow`, run by `make test-site`;
tests/control/test_site_limit.py steps the same with literal times in `make test`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import load_config
from app.control.site_limit import METER_CHECK_S, METER_RETRY_S
from app.gateway import Gateway
from app.sep.der import DERControlBase
from app.sep.types import ActivePower
from app.telemetry.metering_mirror import SITE_ROLE_FLAGS
from hal.inverter import BatterySpec
from hal.modbus import BusSettings
from wattsmart_lab.gateway_config import lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

INTERVAL_S = 5
BIG = BatterySpec(ramp_w_per_s=1e6, max_w=5000.0, max_charge_w=5000.0, max_discharge_w=5000.0)
SMALL = BatterySpec(
    ramp_w_per_s=1e6, max_w=3000.0, max_charge_w=3000.0, max_discharge_w=3000.0, capacity_wh=6000.0
)
METER = 10
#: the bus timing the gateway gets: what one call to a dead device costs bounds the re-split
BUS = BusSettings(timeout_s=1.0, retries=1)
#: its tries, the quiet between them and the quiet after the last (hal.modbus: a late reply's window)
DEAD_CALL_S = BUS.call_budget_s() + BUS.timeout_s
#: what a loaded 2-core CI machine adds to a cycle (scheduling, TLS) beyond the bound being tested
SLACK_S = 5.0


class Load:
    """The household's load, changed by the test while the gateway runs."""

    def __init__(self, watts: float) -> None:
        self.watts = watts

    def __call__(self, _now: float) -> float:
        return self.watts


@pytest.fixture
def load() -> Load:
    return Load(1500.0)


@pytest.fixture
async def site(load: Load) -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer.site([BIG, SMALL], meter_id=METER, load=load) as server:
        yield server


def write_site_config(path: Path, lab: LabServer, site: SunSpecServer, **sections: Any) -> Path:
    """The lab configuration with `inverter:` as a list of two and the site meter."""
    data = lab_config(lab, site.port, path.parent / "state", telemetry={"interval_s": INTERVAL_S}, **sections)
    first = {**data["inverter"], "unit_id": 1, "timeout_s": BUS.timeout_s, "retries": BUS.retries}
    data["inverter"] = [first, {"unit_id": 2}]
    data["meter"] = {"unit_id": METER}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def held(site: SunSpecServer, unit: int) -> float:
    return site.unit(unit).battery.target_w or 0.0


async def until(predicate: Callable[[], bool], within: float) -> float:
    """Seconds until `predicate()` held (polled every 20 ms); fails after `within`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_half_discharge_split_then_one_inverter_dies(
    tmp_path: Path, lab_server: LabServer, site: SunSpecServer
) -> None:
    tree = lab_server.tree
    # +50 % of the site's max discharge rate (8000 W), in force from before the gateway starts
    tree.add_control(1, start=tree.now() - timedelta(seconds=1), duration=600, fixed_w=5000)
    gw = Gateway(load_config(write_site_config(tmp_path / "gateway.yaml", lab_server, site)))
    run = asyncio.create_task(gw.run())
    try:
        await until(lambda: held(site, 1) + held(site, 2) == 4000.0, 20)
        assert (held(site, 1), held(site, 2)) == (2500.0, 1500.0)  # in proportion to 5000 : 3000
        await until(lambda: [m["share W"] for m in gw.status()["site"]["inverters"]] == [2500.0, 1500.0], 10)
        assert gw.status()["inverter"]["max discharge W"] == 8000.0

        # in the steady state (the sampler has read once), unit 2 dies
        await until(lambda: gw.status()["telemetry"].get("last sample") is not None, 20)
        site.unit(2).faults.silent = True
        moved = await until(lambda: held(site, 1) == 4000.0, 3 * INTERVAL_S)
        # within one cycle, plus what one call to the dead unit costs
        assert moved <= INTERVAL_S + DEAD_CALL_S + 1.0
        assert held(site, 1) <= BIG.max_discharge_w
        status = gw.status()
        assert status["state"] == "degraded"
        assert [m["reachable"] for m in status["site"]["inverters"]] == [True, False]
        assert any("inverter[1] (unit 2)" in p for p in status["inverter"]["data not trusted"])
        assert "unit 2" in await asyncio.to_thread(_page, gw)

        # one MirrorUsagePoint per quantity: the DER's W and Hz, and the site's W
        await until(lambda: len(tree.mups) == 3, 3 * INTERVAL_S)
        roles = sorted(m.roleFlags for m in tree.mups.values())
        assert roles.count(SITE_ROLE_FLAGS) == 1
        site_mup = next(n for n, m in tree.mups.items() if m.roleFlags == SITE_ROLE_FLAGS)
        await until(lambda: any(n == site_mup for n, _ in tree.readings), 3 * INTERVAL_S)
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 30)  # as the audit: a loaded machine stops slowly
    assert held(site, 1) == 0.0  # released on the way out


def _page(gw: Gateway) -> str:
    from datetime import UTC

    from app.commissioning.page import render_page

    return render_page(gw.status(), "", time.time(), UTC)


@pytest.mark.slow  # ~50 s: the silent meter is tried again after 30 s (make test-site)
async def test_export_limit_holds_at_the_connection_point_then_falls_back(
    tmp_path: Path, lab_server: LabServer, site: SunSpecServer, load: Load
) -> None:
    tree = lab_server.tree
    limit = 1000.0
    base = DERControlBase(
        opModTargetW=ActivePower.from_watts(8000), opModExpLimW=ActivePower.from_watts(limit)
    )
    tree.add_control(1, start=tree.now() - timedelta(seconds=1), duration=600, base=base)
    gw = Gateway(load_config(write_site_config(tmp_path / "gateway.yaml", lab_server, site)))
    run = asyncio.create_task(gw.run())
    meter = site.meters[METER]

    def battery_w() -> float:
        return held(site, 1) + held(site, 2)

    try:
        # the battery covers the house and exports up to the limit: 1500 + 1000
        await until(lambda: battery_w() == load.watts + limit, 20 + SLACK_S)
        exports = []
        for watts in (3000.0, 700.0, 2200.0):  # the household's load moves
            load.watts = watts
            await until(lambda: battery_w() == load.watts + limit, METER_CHECK_S + SLACK_S)
            exports.append(meter.site_export_w(site.clock()))
        assert exports == [limit] * 3  # the site exports exactly the limit, whatever the house draws
        # never over the limit for longer than one meter cycle: at the load drop it briefly was
        assert gw.status()["site"]["meter"]["reachable"] is True

        meter.faults.silent = True  # the meter goes silent mid-event
        # within one meter cycle and the timeouts of two reads (the sampler's and the control's)
        await until(lambda: battery_w() == limit, METER_CHECK_S + 2 * DEAD_CALL_S + SLACK_S)
        # battery-only: the battery alone never gives more than the limit, whatever the load does
        load.watts = 300.0
        await asyncio.sleep(METER_CHECK_S + 1)
        assert battery_w() == limit

        meter.faults.silent = False  # it answers again: back at the connection point
        await until(
            lambda: battery_w() == load.watts + limit, METER_RETRY_S + METER_CHECK_S + DEAD_CALL_S + SLACK_S
        )
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 30)  # as the audit: a loaded machine stops slowly
