"""Polling on simulated time: pollRate inheritance, never faster, re-discovery, backoff, outages."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

import pytest

from app.client.poll_schedule import PHASE_MAX_S
from app.health import Kind
from tests.client.sim import FakeTime, Rig
from wattsmart_lab.server import LabServer

MakeRig = Callable[..., AbstractAsyncContextManager[Rig]]
HOUR = 3600.0


def _assert_paced(times: list[float], rate: float, horizon: float) -> None:
    """Gaps are never shorter than `rate` and the count is what that rate allows (phase ≤ 10 %)."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= rate - 1e-6 for g in gaps), (rate, gaps)
    assert len(times) <= math.floor(horizon / rate) + 1
    slowest = rate + min(rate * 0.1, PHASE_MAX_S)
    assert len(times) >= math.floor(horizon / slowest), (rate, times)


async def test_simulated_hour_honours_every_poll_rate(sim_server: LabServer, make_rig: MakeRig) -> None:
    rates = sim_server.tree.poll_rates
    rates.dcap, rates.tm, rates.edev, rates.fsa, rates.derp, rates.der, rates.mup = (
        900,  # DeviceCapability: its own
        300,  # Time: its own, faster than its parent
        None,  # EndDeviceList: inherits DeviceCapability's 900
        600,  # FunctionSetAssignmentsList: its own
        60,  # DERProgramList: its own; DERControlList/ActiveDERControlList inherit 60
        None,  # DERList: inherits EndDeviceList's (900)
        None,  # MirrorUsagePointList: inherits DeviceCapability's 900
    )
    async with make_rig(sim_server) as rig:
        await rig.run_until(HOUR)
    expected = {
        "/dcap": 900,
        "/tm": 300,
        "/edev": 900,
        "/edev/3/fsa": 600,
        "/fsa/0/derp": 60,
        "/derp/1/derc": 60,
        "/derp/1/actderc": 60,
        "/edev/3/der": 900,
        "/mup": 900,
    }
    for path, rate in expected.items():
        _assert_paced(rig.gets(path), rate, HOUR)
    assert rig.discovery.schedule.rate("/edev") == 900
    assert rig.discovery.schedule.rate("/derp/2/derc") == 60
    total = len(sim_server.requests)
    # 4 at 900 s, 1 at 600 s, 1 at 300 s and 8 lists at 60 s (2 DERProgramLists, 3 × 2 control
    # lists), the 60 s ones stretched by their phase (≤ 6 s): 16 + 6 + 12 + 8 × 55..60 ≈ 474..514
    assert 470 <= total <= 520, total


async def test_inheritance_takes_the_nearest_parent(sim_server: LabServer, make_rig: MakeRig) -> None:
    rates = sim_server.tree.poll_rates
    rates.dcap, rates.tm, rates.edev, rates.fsa, rates.derp, rates.der, rates.mup = (
        900,
        None,
        300,
        None,
        None,
        None,
        None,
    )
    async with make_rig(sim_server) as rig:
        await rig.run_until(HOUR)
    expected = {
        "/tm": 900,  # Time ← DeviceCapability
        "/mup": 900,  # MirrorUsagePointList ← DeviceCapability
        "/edev": 300,  # its own
        "/edev/3/fsa": 300,  # FSA list ← EndDeviceList, not DeviceCapability
        "/fsa/1/derp": 300,  # DERProgramList ← FSA list
        "/derp/2/derc": 300,  # DERControlList ← DERProgramList
        "/edev/3/der": 300,  # DERList ← EndDeviceList
    }
    for path, rate in expected.items():
        _assert_paced(rig.gets(path), rate, HOUR)


async def test_default_poll_rate_when_nobody_says(sim_server: LabServer, make_rig: MakeRig) -> None:
    rates = sim_server.tree.poll_rates
    rates.dcap = rates.tm = rates.edev = rates.fsa = rates.derp = rates.der = rates.mup = None
    async with make_rig(sim_server, default_poll_rate_s=900) as rig:
        await rig.run_until(HOUR)
    for path in ("/dcap", "/tm", "/edev", "/derp/0/derc", "/mup"):
        _assert_paced(rig.gets(path), 900, HOUR)


async def test_href_change_is_followed(sim_server: LabServer, make_rig: MakeRig) -> None:
    sim_server.tree.poll_rates.derp = 60
    async with make_rig(sim_server) as rig:
        await rig.run_until(100)
        sim_server.tree.rename("/derp/1", "/derp/one")
        sim_server.clear_requests()
        await rig.run_until(300)
        tree = rig.poller.tree
    assert tree is not None
    assert "/derp/one" in [p.program.href for p in tree.programs]
    # the program list was re-read at its pollRate, and the new branch read right after it
    list_read = rig.gets("/fsa/0/derp")[0]
    assert list_read <= 100 + 60 + 6
    assert rig.gets("/derp/one/derc")[0] - list_read < 1.0
    # only a 404 (if the old href came due first) was ever asked of the old branch
    assert all(r.status == 404 for r in sim_server.requests if r.path.startswith("/derp/1/"))


async def test_404_rediscovers_the_branch(sim_server: LabServer, make_rig: MakeRig) -> None:
    rates = sim_server.tree.poll_rates
    rates.dcap, rates.tm = 900, 60  # Time is read long before its parent is due again
    async with make_rig(sim_server) as rig:
        await rig.run_until(100)
        sim_server.tree.rename("/tm", "/time")
        sim_server.clear_requests()
        await rig.run_until(200)
        tree = rig.poller.tree
    seq = [(r.path, r.status) for r in sim_server.requests if r.path in ("/tm", "/dcap", "/time")]
    assert seq[:3] == [("/tm", 404), ("/dcap", 200), ("/time", 200)]
    assert tree is not None and tree.device_capability.TimeLink is not None
    assert tree.device_capability.TimeLink.href == "/time"


async def test_linked_but_404_is_not_a_storm(
    sim_server: LabServer, make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.client.discovery")
    sim_server.tree.poll_rates.derp = 60
    sim_server.tree.remove("/derp/1/actderc")
    async with make_rig(sim_server) as rig:
        await rig.run_until(HOUR)
    # each poll: one 404, one re-read of the parent list, then it is left alone until due again
    assert len(rig.gets("/derp/1/actderc")) <= 2 * (HOUR / 60) + 2
    assert rig.poller.failures == 0
    broken = [r for r in caplog.records if "/derp/1/actderc" in r.getMessage()]
    assert len(broken) == 1  # a transition, not a line per poll


async def test_500_storm_backs_off(
    sim_server: LabServer, make_rig: MakeRig, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.health")
    async with make_rig(sim_server, max_backoff_s=300.0) as rig:
        await rig.run_until(10)
        sim_server.clear_requests()
        sim_server.fail(count=10_000, status=500)
        await rig.run_until(10 + 1800)
        storm = len(sim_server.requests)
        sim_server.clear_faults()
        await rig.run_until(10 + 1800 + 301)
        recovered = rig.poller.tree
    # full jitter doubling to a 300 s cap: ~8 tries to reach the cap, then ~1 per 150 s on average
    assert 8 <= storm <= 30, storm
    assert recovered is not None
    health = [r for r in caplog.records if r.name == "app.health"]
    assert [r.levelno for r in health] == [logging.ERROR, logging.INFO]
    assert rig.health.problems() == {}


async def test_retry_after_is_honoured(sim_server: LabServer, make_rig: MakeRig) -> None:
    async with make_rig(sim_server) as rig:
        sim_server.fail(count=3, status=503, retry_after="120")
        await rig.run_until(500)
    times = rig.gets("/dcap")
    assert len(times) >= 4
    assert all(b - a >= 120 for a, b in itertools.pairwise(times[:4])), times


async def test_server_down_then_up(sim_server: LabServer, make_rig: MakeRig) -> None:
    async with make_rig(sim_server) as rig:
        await rig.run_until(10)
        await sim_server.down()
        rig.discovery.schedule.make_due("/dcap")
        await rig.run_until(200)
        assert "2030.5 server" in rig.health.problems()
        assert "ConnectionFailed" in rig.health.problems()["2030.5 server"]
        assert rig.health.kind("2030.5 server") is Kind.SERVER
        await sim_server.up()
        await rig.run_until(600)
    assert rig.health.problems() == {}


async def test_malformed_body_keeps_previous_copy(sim_server: LabServer, make_rig: MakeRig) -> None:
    sim_server.tree.poll_rates.derp = 60
    now = sim_server.tree.now()
    control = sim_server.tree.add_control(1, start=now + timedelta(hours=2), duration=60, fixed_w=100)
    async with make_rig(sim_server) as rig:
        await rig.run_until(10)
        sim_server.garbage(count=1, path="/derp/1/derc")
        await rig.run_until(200)
        tree = rig.poller.tree
    assert tree is not None
    branch = next(p for p in tree.programs if p.primacy == 1)
    assert [c.mRID for c in branch.controls] == [control.mRID]
    assert rig.poller.failures == 0


async def test_new_control_is_published(
    sim_server: LabServer, make_rig: MakeRig, fake_time: FakeTime
) -> None:
    sim_server.tree.poll_rates.derp = 60
    async with make_rig(sim_server) as rig:
        await rig.run_until(5)
        first = rig.poller.tree
        assert first is not None
        sim_server.tree.add_control(1, start=sim_server.tree.now(), duration=600, fixed_w=5000)
        await rig.run_until(80)
        second = rig.poller.tree
    assert second is not None and second != first
    assert len(next(p for p in second.programs if p.primacy == 1).controls) == 1


async def test_snapshots_only_on_change(sim_server: LabServer, make_rig: MakeRig) -> None:
    seen: list[int] = []

    async def watch(rig: Rig) -> None:
        async for tree in rig.poller.snapshots():
            seen.append(sum(len(p.controls) for p in tree.programs))

    async with make_rig(sim_server) as rig:
        watcher = asyncio.create_task(watch(rig))
        await rig.run_until(600)  # Time and every list re-read many times, nothing changed
        await asyncio.sleep(0)
        quiet = list(seen)
        later = sim_server.tree.now() + timedelta(days=1)
        sim_server.tree.add_control(0, start=later, duration=60, fixed_w=1)
        await rig.run_until(700)
        await asyncio.sleep(0)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert quiet == [0]
    assert seen[-1] == 1 and len(seen) <= 3  # the program's link count may change a walk earlier


async def test_time_without_a_poll_rate_takes_the_default_not_its_parents(
    sim_server: LabServer, make_rig: MakeRig
) -> None:
    rates = sim_server.tree.poll_rates
    rates.dcap, rates.tm, rates.edev, rates.mup = 60, None, 300, 600
    async with make_rig(sim_server, default_poll_rate_s=900) as rig:
        await rig.run_until(HOUR)
    _assert_paced(rig.gets("/dcap"), 60, HOUR)
    # re-reading DeviceCapability every minute re-reads none of its children before they are due
    _assert_paced(rig.gets("/tm"), 900, HOUR)
    _assert_paced(rig.gets("/edev"), 300, HOUR)
    _assert_paced(rig.gets("/mup"), 600, HOUR)


async def test_a_huge_poll_rate_is_capped_with_one_warning(
    sim_server: LabServer, make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.client")
    rates = sim_server.tree.poll_rates
    rates.mup = 4294967295  # the largest UInt32: a list frozen for 136 years
    rates.edev = 1  # and one that would have us poll every second
    async with make_rig(sim_server, max_rate_s=3600, min_rate_s=10) as rig:
        await rig.run_until(4 * HOUR)
    _assert_paced(rig.gets("/mup"), 3600, 4 * HOUR)  # re-read within the ceiling (+ its phase)
    assert len(rig.gets("/mup")) >= 4
    _assert_paced(rig.gets("/edev"), 10, 4 * HOUR)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "4294967295" in w] == [
        "/mup pollRate 4294967295 s from the server is above the ceiling; using 3600 s"
    ]
    assert len([w for w in warnings if "/edev pollRate 1 s" in w]) == 1
    assert set(rig.discovery.notices.current()) == {"pollRate /mup", "pollRate /edev"}
