"""A simulated hour against the lab server over TLS: mirrors, readings, postRate, DER reports."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import timedelta

import pytest

from app.client.server import Server
from app.config import Config
from app.health import Health
from app.sep import parse
from app.sep.der import DERCapability, DERSettings, DERStatus
from app.sep.metering_mirror import MirrorUsagePoint
from app.store import open_store
from app.telemetry import TelemetryService
from tests.telemetry.conftest import START, Device
from tests.telemetry.helpers import received_ticks, running, times
from tests.telemetry.simclock import SimClock
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter

HOUR = timedelta(hours=1)


def service_for(
    config: Config, inverter: SimInverter, http: Server, device: Device, clock: SimClock, **kw: object
) -> TelemetryService:
    return TelemetryService(config, inverter, http, device.links, clock, Health(), device.lfdi, **kw)  # type: ignore[arg-type]


async def test_a_simulated_hour(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
    assert_valid: Callable[[bytes], None],
) -> None:
    config = make_config(ratings_interval_s=60)
    service = service_for(config, inverter, http, device, clock)
    async with running(service) as stop:
        await clock.run_until(START + timedelta(minutes=30, seconds=5))
        # the utility asks for posts every 2 minutes from now on
        for n, mup in list(lab.tree.mups.items()):
            lab.tree.mups[n] = dataclasses.replace(mup, postRate=120)
        await clock.run_until(START + timedelta(minutes=40, seconds=5))
        inverter.model.spec = dataclasses.replace(inverter.model.spec, max_w=4000.0, max_discharge_w=4000.0)
        await clock.run_until(START + HOUR)
        await stop()

    # every document sent is valid 2030.5
    for request in lab.requests:
        if request.method in ("POST", "PUT"):
            assert_valid(request.body)

    # exactly one MUP per point, carrying our ReadingTypes
    assert lab.count("POST", "/mup") == 2
    mups = list(lab.tree.mups.values())
    assert sorted(m.MirrorMeterReading[0].ReadingType.uom for m in mups) == [33, 38]  # type: ignore[union-attr]

    # readings: the 30-s grid from 10:00:00, no gaps, no duplicates; the rest waits in the outbox
    first = int((START + timedelta(seconds=10)).timestamp())
    last = int((START + HOUR).timestamp()) // 30 * 30
    grid = list(range(first, last + 1, 30))
    with open_store(config.state_dir) as store:
        waiting = {p: [t for t, _, _ in store.outbox.pending(p, 1000)] for p in ("W", "Hz")}
    for n, counts in received_ticks(lab).items():
        assert set(counts.values()) == {1}, "a reading arrived twice"
        key = "W" if lab.tree.mups[n].MirrorMeterReading[0].ReadingType.uom == 38 else "Hz"  # type: ignore[union-attr]
        assert sorted(counts) + waiting[key] == grid

    # posts at the server's postRate: every 5 min, then every 2 min once the MUP was re-read
    for n in lab.tree.mups:
        posted = [int(t.timestamp()) for t in times(lab, "POST", f"/mup/{n}")]
        gaps = [b - a for a, b in itertools.pairwise(posted)]
        change = int((START + timedelta(minutes=30, seconds=5)).timestamp())
        before = [g for a, g in zip(posted, gaps, strict=False) if a < change]
        after = [g for a, g in zip(posted, gaps, strict=False) if a > change + 300]
        assert set(before) == {300}
        assert set(after) == {120}
        assert all(t % 300 == 0 for t in posted if t < change)

    # DERStatus every 60 s, on the minute, with the state of charge
    der = f"/edev/{device.index}/der/0"
    status_times = [int(t.timestamp()) for t in times(lab, "PUT", f"{der}/ders")]
    assert [b - a for a, b in itertools.pairwise(status_times)] == [60] * 59
    status = lab.tree.stored[f"{der}/ders"]
    assert isinstance(status, DERStatus) and status.stateOfChargeStatus is not None

    # DERCapability/DERSettings at start-up and again after the ratings changed
    caps = [
        parse(DERCapability, r.body) for r in lab.requests if r.method == "PUT" and r.path.endswith("dercap")
    ]
    sets = [parse(DERSettings, r.body) for r in lab.requests if r.method == "PUT" and r.path.endswith("derg")]
    assert [c.rtgMaxW.watts for c in caps] == [5000, 4000]
    assert [s.setMaxW.watts for s in sets] == [5000, 4000]
    assert sets[1].updatedTime > sets[0].updatedTime


async def test_restart_reuses_the_mirrors(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    for _ in range(2):
        async with running(service_for(config, inverter, http, device, clock)) as stop:
            await clock.run_for(120)
            await stop()
    assert lab.count("POST", "/mup") == 2
    # with the state directory lost, the mirrors are found again by mRID in the list
    for path in config.state_dir.iterdir():
        path.unlink()
    async with running(service_for(config, inverter, http, device, clock)) as stop:
        await clock.run_for(120)
        await stop()
    assert lab.count("POST", "/mup") == 2
    assert all(isinstance(m, MirrorUsagePoint) for m in lab.tree.mups.values())
    assert len(lab.tree.mups) == 2


async def test_failed_reads_are_gaps_never_invented(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    health = Health()
    service = TelemetryService(config, inverter, http, device.links, clock, health, device.lfdi)
    async with running(service) as stop:
        await clock.run_for(100)  # ticks :00 :30 :60 :90
        inverter.offline = True
        await clock.run_for(60)  # two failed reads
        assert "telemetry.inverter" in health.problems()
        # swapped for a smaller unit while unreachable: the reconnect re-reads the ratings
        inverter.model.spec = dataclasses.replace(inverter.model.spec, max_w=3000.0, capacity_wh=5000.0)
        inverter.offline = False
        await clock.run_for(600)
        assert health.problems() == {}
        await stop()
    first = int((START + timedelta(seconds=10)).timestamp())
    lost = {first + 120, first + 150}
    for counts in received_ticks(lab).values():
        assert set(counts.values()) == {1}
        assert lost.isdisjoint(counts)
        assert set(range(first, first + 600, 30)) - set(counts) == lost
    caps = [parse(DERCapability, r.body) for r in lab.requests if r.path.endswith("/dercap")]
    assert [(c.rtgMaxW.watts, c.rtgMaxWh.real if c.rtgMaxWh else None) for c in caps] == [
        (5000, 10000),
        (3000, 5000),
    ]
    # the gaps are on record in the outbox until delivery passes them, never as values
    with open_store(config.state_dir) as store:
        assert all(t > first + 600 for t, _, _ in store.outbox.pending("W", 100))


async def test_outbox_is_bounded_by_age_and_counts_what_fell_off(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(outbox_max_age_s=1800)
    service = service_for(config, inverter, http, device, clock)
    async with running(service) as stop:
        await clock.run_for(30)
        await lab.down()
        await clock.run_for(2 * 3600)
        await lab.up()
        await clock.run_for(900)
        await stop()
    # hourly pruning at 11:00 and 12:00 dropped every reading before 11:30: 10:00:30 .. 11:29:30
    assert service.dropped == 2 * 179
    assert any("older than 1800 s" in r.getMessage() for r in caplog.records)
    ten, half_past_eleven = (
        int((START + timedelta(seconds=10)).timestamp()),
        int((START + timedelta(hours=1, minutes=30, seconds=10)).timestamp()),
    )
    for counts in received_ticks(lab).values():
        assert set(counts.values()) == {1}
        ticks = sorted(counts)
        assert ticks[:2] == [ten, half_past_eleven]
        assert ticks[1:] == list(range(half_past_eleven, ticks[-1] + 1, 30))


async def test_a_mirror_the_server_lost_is_created_again_once(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    lab.tree.post_rate = None  # the server gives no postRate: the configured default (60 s) applies
    service = service_for(make_config(default_post_rate_s=60), inverter, http, device, clock)
    async with running(service) as stop:
        await clock.run_for(300)
        # the newest one: the lab numbers a new mirror len(mups), so deleting /mup/0 would collide
        del lab.tree.mups[max(lab.tree.mups)]
        await clock.run_for(300)
        await stop()
    assert lab.count("POST", "/mup") == 3
    assert len(lab.tree.mups) == 2
    lost = int((START + timedelta(seconds=300)).timestamp())
    for n in lab.tree.mups:
        path = f"/mup/{n}"
        posted = [int(r.at.timestamp()) for r in lab.requests if r.method == "POST" and r.path == path]
        taken = [
            int(r.at.timestamp())
            for r in lab.requests
            if (r.method, r.path) == ("POST", path) and r.status < 300
        ]
        before, after = [t for t in taken if t < lost], [t for t in taken if t > lost]
        assert len(before) > 1 and {b - a for a, b in itertools.pairwise(before)} == {60}, posted
        if len(taken) < len(posted):  # the lost mirror: its failed post is retried with the new one,
            after = after[1:]  # and the cadence goes on from when that post was due
        assert len(after) > 1 and {b - a for a, b in itertools.pairwise(after)} == {60}, posted
        assert {t % 60 for t in before + after} == {before[0] % 60}
    for counts in received_ticks(lab).values():
        assert set(counts.values()) == {1}


async def test_a_refused_report_is_not_repeated_and_blocks_nothing(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dercap = f"/edev/{device.index}/der/0/dercap"
    lab.fail(1, status=400, path=dercap)
    async with running(service_for(make_config(), inverter, http, device, clock)) as stop:
        await clock.run_for(600)
        await stop()
    assert lab.count("PUT", dercap) == 1
    assert any("refused DERCapability" in r.getMessage() for r in caplog.records)
    assert lab.count("PUT", f"/edev/{device.index}/der/0/derg") == 1
    assert [len(counts) for counts in received_ticks(lab).values()] == [11, 11]  # through 10:05:00


async def test_der_settings_report_the_default_controls_set_grad_w(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    links = dataclasses.replace(device.links, set_grad_w=300)  # a restart on the saved links
    service = TelemetryService(make_config(), inverter, http, links, clock, Health(), device.lfdi)
    async with running(service) as stop:
        await clock.run_for(60)
        # a new snapshot: the DefaultDERControl in force now limits the ramp to 10 %/s
        service.update_links(dataclasses.replace(device.links, set_grad_w=1000))
        await clock.run_for(60)
        await stop()
    derg = f"/edev/{device.index}/der/0/derg"
    sets = [parse(DERSettings, r.body) for r in lab.requests if r.method == "PUT" and r.path == derg]
    assert [s.setGradW for s in sets] == [300, 1000]
    assert sets[1].updatedTime > sets[0].updatedTime


async def test_der_reports_go_out_before_the_server_offers_a_mirror_list(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    lab.tree.offer_mirrors = False
    no_mirrors = dataclasses.replace(device.links, mirror_usage_points=None)
    service = TelemetryService(config, inverter, http, no_mirrors, clock, Health(), device.lfdi)
    der = f"/edev/{device.index}/der/0"
    async with running(service) as stop:
        await clock.run_for(600)
        assert lab.count("PUT", f"{der}/dercap") == 1
        assert lab.count("PUT", f"{der}/derg") == 1
        assert lab.count("PUT", f"{der}/ders") >= 9
        assert lab.count("POST", "/mup") == 0 and received_ticks(lab) == {}
        lab.tree.offer_mirrors = True  # the next read of DeviceCapability (pollRate 300 s) finds the list
        service.update_links(device.links)
        await clock.run_for(900)
        await stop()
    assert lab.count("POST", "/mup") == 2
    first = int((START + timedelta(seconds=10)).timestamp())
    with open_store(config.state_dir) as store:
        waiting = {p: [t for t, _, _ in store.outbox.pending(p, 1000)] for p in ("W", "Hz")}
    for n, counts in received_ticks(lab).items():
        key = "W" if lab.tree.mups[n].MirrorMeterReading[0].ReadingType.uom == 38 else "Hz"  # type: ignore[union-attr]
        delivered = sorted(counts) + waiting[key]
        assert delivered[0] == first  # the readings kept in the outbox went out, none lost
        assert delivered == list(range(first, delivered[-1] + 1, 30))


async def test_after_a_restart_the_mirrors_are_re_read_at_the_lists_poll_rate(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    lab.tree.poll_rates.mup = 120
    config = make_config()
    async with running(service_for(config, inverter, http, device, clock)) as stop:
        await clock.run_for(60)
        await stop()
    lab.requests.clear()
    # the restart finds both MUPs in the poller's snapshot: nothing created, nothing read twice
    async with running(service_for(config, inverter, http, device, clock)) as stop:
        await clock.run_for(20 * 60)
        await stop()
    assert lab.count("POST", "/mup") == 0
    # one reader: the poller reads the list at its pollRate (120 s); telemetry reads no mirror itself
    reads = [int(t.timestamp()) for t in times(lab, "GET", "/mup")]
    assert 9 <= len(reads) <= 10
    assert all(b - a >= 120 for a, b in itertools.pairwise(reads))
    assert not [r for r in lab.requests if r.method == "GET" and r.path.startswith("/mup/")]


async def test_status_tells_the_last_sample_post_and_backlog(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    service = service_for(config, inverter, http, device, clock)
    assert service.status() == {
        "last sample": None,
        "mirror list": device.links.mirror_usage_points,
        "last post W": None,
        "last post Hz": None,
        "waiting W": 0,
        "waiting Hz": 0,
        "dropped": 0,
    }
    async with running(service) as stop:
        await clock.run_for(100)  # samples at 10:00:00, :30, 10:01:00, :30; the first is posted
        status = service.status()
        await stop()
    last_post = max(times(lab, "POST", "/mup/0") + times(lab, "POST", "/mup/1"))
    assert status["last sample"] == (START + timedelta(seconds=100)).isoformat()
    assert status["last post W"] == status["last post Hz"] == last_post.isoformat()
    with open_store(config.state_dir) as store:
        assert (status["waiting W"], status["waiting Hz"]) == (
            store.outbox.backlog("W"),
            store.outbox.backlog("Hz"),
        )
    assert status["waiting W"] == 3
    assert service.status()["waiting W"] == 3  # also once the service stopped
