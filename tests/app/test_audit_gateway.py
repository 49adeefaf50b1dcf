"""The conformance self-audit over the whole gateway: a 3-minute real run against the lab server.

Short pollRates (and a Time without one), a 10-s sample grid, postRates of 20 s then 40 s, one
event with its responses. Every request the lab saw must pass tests/audit.py; the same gateway with
a deliberately broken poller must not. Slow (about 4 minutes of real time): `make test-audit` runs
it, `make test` does not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.config import load_config
from app.gateway import Gateway
from tests.audit import audit, counts, lab_poll_rates
from tests.client.test_audit import HastySchedule
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer
from wattsmart_lab.tree import PollRates

pytestmark = pytest.mark.slow

RUN_S = 180.0
CHANGE_AT_S = 75.0


def set_post_rate(lab: LabServer, rate: int) -> None:
    lab.tree.post_rate = rate
    for n, mup in list(lab.tree.mups.items()):
        lab.tree.mups[n] = dataclasses.replace(mup, postRate=rate)


async def test_three_minutes_of_the_gateway_pass_the_audit(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    lab = lab_server
    rates = PollRates(dcap=20, tm=None, edev=30, fsa=None, derp=15, der=None, mup=20)
    lab.tree.poll_rates = rates
    changes: list[tuple[datetime, int]] = [(lab.tree.now(), 20)]
    set_post_rate(lab, 20)
    start = lab.tree.now().replace(microsecond=0) + timedelta(seconds=40)
    event = lab.tree.add_control(1, start=start, duration=30, fixed_w=2000)
    path = write_lab_config(
        tmp_path / "gateway.yaml", lab, battery.port, tmp_path / "state", telemetry={"interval_s": 10}
    )
    gw = Gateway(load_config(path))
    run = asyncio.create_task(gw.run())
    try:
        await asyncio.sleep(CHANGE_AT_S)
        set_post_rate(lab, 40)
        changes.append((lab.tree.now(), 40))
        await asyncio.sleep(RUN_S - CHANGE_AT_S)
        status = gw.status()
    finally:
        gw.supervisor.stopping.set()
        assert await asyncio.wait_for(run, 30) == 0
    requests = list(lab.requests)
    for line in sorted(f"{n:4d} {k}" for k, n in counts(requests).items()):
        print(line)
    violations = audit(requests, lab_poll_rates(rates), changes)
    assert violations == [], "\n".join(violations)
    # the run exercised what the audit checks
    mup_posts = [r for r in requests if r.method == "POST" and r.path.startswith("/mup/")]
    assert len({r.path for r in mup_posts}) == 2 and len(mup_posts) >= 2 * 6
    assert sum(1 for r in requests if r.method == "PUT" and r.path.endswith("/ders")) >= 2
    assert sum(1 for r in requests if r.method == "GET" and r.path == "/tm") == 1  # 900 s: once
    assert sum(1 for r in requests if r.method == "GET" and r.path == "/dcap") >= 8
    assert {(r.subject.upper(), r.status) for r in lab.tree.responses} >= {(event.mRID, 1), (event.mRID, 2)}
    assert status["server"]["bounded inputs"] is None
    for mup in sorted({r.path for r in mup_posts}):  # both rates were used, the change included
        posted = [r.at for r in mup_posts if r.path == mup and r.status < 300]
        gaps = {round((b - a).total_seconds()) for a, b in itertools.pairwise(posted)}
        assert {20, 40} <= gaps, (mup, posted)


async def test_the_audit_fails_the_gateway_with_a_broken_poller(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.client.discovery.PollSchedule", HastySchedule)  # every pollRate / 3
    lab = lab_server
    rates = PollRates(dcap=20, tm=None, edev=30, fsa=None, derp=15, der=None, mup=20)
    lab.tree.poll_rates = rates
    set_post_rate(lab, 20)
    path = write_lab_config(
        tmp_path / "gateway.yaml", lab, battery.port, tmp_path / "state", telemetry={"interval_s": 10}
    )
    gw = Gateway(load_config(path))
    run = asyncio.create_task(gw.run())
    try:
        await asyncio.sleep(45)
    finally:
        gw.supervisor.stopping.set()
        assert await asyncio.wait_for(run, 30) == 0
    violations = audit(list(lab.requests), lab_poll_rates(rates), [(lab.tree.now() - timedelta(hours=1), 20)])
    print("\n".join(violations))
    assert {line.split("?")[0] for line in violations} >= {
        "GET /dcap",
        "GET /edev",
        "GET /mup",
        "GET /fsa/0/derp",
    }
