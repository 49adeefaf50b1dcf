"""The conformance self-audit over poller and telemetry together, on simulated time: short pollRates,
a Time without a pollRate, postRates that change mid-run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from app.client.server import Server
from app.config import Config
from app.health import Health
from app.telemetry import TelemetryService
from tests.audit import audit, lab_poll_rates
from tests.telemetry.conftest import Device
from tests.telemetry.helpers import running
from tests.telemetry.simclock import SimClock
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter
from wattsmart_lab.tree import PollRates


def set_post_rate(lab: LabServer, rate: int) -> None:
    lab.tree.post_rate = rate
    for n, mup in list(lab.tree.mups.items()):
        lab.tree.mups[n] = dataclasses.replace(mup, postRate=rate)


async def test_poller_and_telemetry_pass_the_audit_through_post_rate_changes(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    # (the session's poller started on the lab's default rates: the audit starts from here)
    rates = PollRates(dcap=20, tm=None, edev=30, fsa=None, derp=15, der=None, mup=20)
    lab.tree.poll_rates = rates
    http.session.discovery.schedule.make_due(lab.tree.href("/dcap"))
    lab.clear_requests()
    changes: list[tuple[datetime, int]] = [(clock.now(), 60)]
    set_post_rate(lab, 60)
    config = make_config(interval_s=10)
    service = TelemetryService(config, inverter, http, device.links, clock, Health(), device.lfdi)
    async with running(service) as stop:
        await clock.run_for(600)
        for rate in (120, 30):
            set_post_rate(lab, rate)
            changes.append((clock.now(), rate))
            await clock.run_for(600)
        await stop()
    posts = [r for r in lab.requests if r.method == "POST" and r.path.startswith("/mup/")]
    assert len(posts) > 40
    assert audit(lab.requests, lab_poll_rates(rates), changes) == []
    # and it is the list's pollRate that carried the change: within 20 s (+ phase) plus one post
    for n in lab.tree.mups:
        after = [r.at for r in posts if r.path == f"/mup/{n}" and r.at > changes[1][0]]
        assert (after[1] - after[0]) == timedelta(seconds=120)
