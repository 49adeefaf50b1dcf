"""A rating lowered on the inverter while an event is in force, end to end: the lab 2030.5 server over
mutual TLS, the whole gateway in-process, the SunSpec simulator over Modbus TCP, all on 127.0.0.1.
DERAvailability, from the DER's DERAvailabilityLink, goes at start-up and again with the new rating.

The gateway runs with 5-s sampling and ratings read every 5 s (the box: 30 s and 60 s), so the test
takes seconds; what is checked is the order and the bounds in those units.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from app.config import load_config
from app.gateway import Gateway
from app.sep import parse
from app.sep.der import DERAvailability, DERCapability, DERSettings
from tests.hal.test_guard import written_watts
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

RATINGS_S = 5


def last_put(lab: LabServer, suffix: str) -> bytes | None:
    bodies = [r.body for r in lab.requests if r.method == "PUT" and r.path.endswith(suffix)]
    return bodies[-1] if bodies else None


def settings_max_w(lab: LabServer) -> int | None:
    body = last_put(lab, "/derg")
    return None if body is None else parse(DERSettings, body).setMaxDischargeRateW.watts  # type: ignore[union-attr]


def capability_max_w(lab: LabServer) -> int | None:
    body = last_put(lab, "/dercap")
    return None if body is None else parse(DERCapability, body).rtgMaxW.watts


def available_w(lab: LabServer) -> int | None:
    body = last_put(lab, "/dera")
    return None if body is None else parse(DERAvailability, body).statWAvail.watts  # type: ignore[union-attr]


def puts(lab: LabServer, suffix: str) -> int:
    return sum(1 for r in lab.requests if r.method == "PUT" and r.path.endswith(suffix))


async def until(predicate: object, within: float) -> float:
    """Seconds until `predicate()` held (polled every 20 ms); fails after `within`."""
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def test_a_lowered_rating_reaches_the_setpoint_then_the_server(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    tree = lab_server.tree
    # +50 % of the max discharge rate, in force from before the gateway starts
    tree.add_control(1, start=tree.now() - timedelta(seconds=1), duration=600, fixed_w=5000)
    path = write_lab_config(
        tmp_path / "gateway.yaml",
        lab_server,
        battery.port,
        tmp_path / "state",
        inverter={"timeout_s": 0.5, "nameplate": {"max_discharge_w": 6000, "max_charge_w": 6000}},
        telemetry={"interval_s": 5, "ratings_interval_s": RATINGS_S, "status_interval_s": 5},
    )
    gw = Gateway(load_config(path))
    run = asyncio.create_task(gw.run())
    try:
        await until(lambda: battery.device.battery.target_w == 2500.0, 20)
        await until(lambda: settings_max_w(lab_server) == 5000 and capability_max_w(lab_server) == 5000, 20)
        await until(lambda: available_w(lab_server) == 5000, 2 * RATINGS_S)
        first = parse(DERAvailability, last_put(lab_server, "/dera") or b"")
        # the simulator's 10 kWh from 50 %: 45 points above the 5 % minimum, 72 s each at 5 kW (less
        # what the event in force discharged since the start: under a point)
        assert first.availabilityDuration is not None and first.reservePercent == 10000
        assert 44 * 72 <= first.availabilityDuration <= 45 * 72

        changed = time.monotonic()
        battery.device.set_ratings(max_w=3000.0, max_discharge_w=3000.0, max_charge_w=3000.0)
        setpoint_at = await until(lambda: battery.device.battery.target_w == 1500.0, 3 * RATINGS_S)
        put_at = await until(lambda: settings_max_w(lab_server) == 3000, 4 * RATINGS_S)
        assert capability_max_w(lab_server) == 3000
        await until(lambda: available_w(lab_server) == 3000, 2 * RATINGS_S)
        # first the battery (50 % of the new maximum), then the server
        assert changed < setpoint_at <= put_at
        assert setpoint_at - changed <= RATINGS_S + 2  # within one ratings period and a control step
        assert put_at - changed <= 2 * RATINGS_S + 5  # within a ratings period and a reporting cycle
        status = gw.status()["inverter"]
        assert status["max discharge W"] == 3000.0 and "6000" in status["nameplate W"]
        assert status["data not trusted"] is None
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 15)
    # DERAvailability at start-up and after the rating change, not with every reading
    assert puts(lab_server, "/dera") == 2 and puts(lab_server, "/ders") >= 3
    # every setpoint written: 50 % of the maximum at the time, never more
    assert set(written_watts(battery.device)) == {2500.0, 1500.0}
