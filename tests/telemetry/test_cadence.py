"""Posts at postRate from the first one and DERStatus every 60 s from the first, across restarts too,
and a retry after a failure that leaves the cadence where it was."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable

import pytest

from app.client.notices import Notices
from app.client.server import Server
from app.config import Config
from app.health import Health
from app.telemetry import TelemetryService
from app.telemetry.service import is_due, next_anchor, resume_anchor
from tests.telemetry.conftest import START, Device
from tests.telemetry.helpers import running, times
from tests.telemetry.simclock import SimClock
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter

T = int(START.timestamp()) + 10  # 10:00:00, a whole minute


def gaps(at: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(at)]


def epoch(lab: LabServer, method: str, path: str) -> list[int]:
    return [int(t.timestamp()) for t in times(lab, method, path)]


def taken(lab: LabServer, path: str) -> list[int]:
    return [
        int(r.at.timestamp()) for r in lab.requests if (r.method, r.path) == ("POST", path) and r.status < 300
    ]


async def idle(clock: SimClock, seconds: float) -> None:
    """Let simulated time pass before the service starts (only the session's poller sleeps on it)."""
    clock.participants -= 1
    try:
        await clock.run_for(seconds)
    finally:
        clock.participants += 1


def test_the_cadence_counts_from_when_a_send_was_due() -> None:
    assert is_due(None, 60, T)
    assert not is_due(T, 60, T + 30) and is_due(T, 60, T + 60)
    assert is_due(T + 600, 60, T)  # the server's clock went back: send, do not wait 10 minutes
    assert next_anchor(None, 60, T + 30) == T + 30  # the first send starts the cadence
    assert next_anchor(T, 60, T + 60) == T + 60
    assert next_anchor(T, 60, T + 90) == T + 60  # a retry 30 s late keeps the cadence
    assert next_anchor(T, 60, T + 600) == T + 600  # after a long outage it starts afresh
    assert next_anchor(T, 120, T + 120) == T + 120  # a new postRate applies from the next post
    # a restart resumes on the earlier run's phase: never sooner than 60 s after its last send
    assert resume_anchor(T + 30, 60, T + 120) + 60 == T + 150
    assert resume_anchor(T + 30, 60, T + 150) + 60 == T + 150
    assert resume_anchor(T + 30, 60, T + 3600 * 24) + 60 == T + 3600 * 24 + 30


async def test_posts_and_status_go_at_their_rates_from_the_first_across_a_restart(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    lab.tree.post_rate = 60
    config = make_config()
    await idle(clock, 30)  # started at 10:00:20: the first sample, status and post are at 10:00:30

    def service() -> TelemetryService:
        return TelemetryService(config, inverter, http, device.links, clock, Health(), device.lfdi)

    async with running(service()) as stop:
        await clock.run_for(80)  # to 10:01:40: status and posts at 10:00:30 and 10:01:30
        await stop()
    # restarted at once: its first tick, 10:02:00, is only 30 s after the last status
    async with running(service()) as stop:
        await clock.run_for(300)
        await stop()
    status = epoch(lab, "PUT", f"/edev/{device.index}/der/0/ders")
    assert status[0] == T + 30
    assert gaps(status) == [60] * (len(status) - 1), status  # the restart kept the :30 phase
    for n in lab.tree.mups:
        posts = epoch(lab, "POST", f"/mup/{n}")
        assert posts[0] == T + 30
        # 60 s from the first post (a minute-aligned grid would have posted again at 10:01:00),
        # and across the restart too
        assert gaps(posts) == [60] * (len(posts) - 1), posts


async def test_a_retry_after_a_failed_post_keeps_the_cadence(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    lab.tree.post_rate = 60
    service = TelemetryService(make_config(), inverter, http, device.links, clock, Health(), device.lfdi)
    async with running(service) as stop:
        await clock.run_for(70)  # posts at 10:00:00 and 10:01:00
        first = lab.tree.mups[0].href
        assert first is not None
        lab.fail(1, status=503, path=first)  # the 10:02:00 post of /mup/0 fails
        await clock.run_for(600)
        await stop()
    posts = taken(lab, "/mup/0")
    failed = [t for t in epoch(lab, "POST", "/mup/0") if t not in posts]
    assert failed == [T + 120]
    retry = next(t for t in posts if t > T + 120)
    assert 0 < retry - (T + 120) < 60
    # every other post is on the cadence from the first: 10:00, 10:01, 10:03, 10:04, ...
    assert [t for t in posts if t != retry] == list(range(T, T + 660, 60)[:2]) + list(
        range(T + 180, T + 661, 60)
    )


async def test_a_huge_post_rate_is_capped_with_one_warning(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app")
    lab.tree.post_rate = 4294967295
    base = make_config()
    config = dataclasses.replace(base, server=dataclasses.replace(base.server, max_rate_s=600))
    notices = Notices()
    service = TelemetryService(
        config, inverter, http, device.links, clock, Health(), device.lfdi, notices=notices
    )
    async with running(service) as stop:
        await clock.run_for(3600)
        await stop()
    for n in lab.tree.mups:
        assert set(gaps(epoch(lab, "POST", f"/mup/{n}"))) == {600}  # not never: the ceiling
    lines = [r.getMessage() for r in caplog.records if "4294967295" in r.getMessage()]
    assert len(lines) == 2 and all(r.endswith("is above the ceiling; using 600 s") for r in lines)  # W, Hz
    assert set(notices.current()) == {"postRate W", "postRate Hz"}
