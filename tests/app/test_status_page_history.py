"""The status page's history ring, its sampler and /api/history over a real listener on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import pytest

from app.commissioning.history import CAPACITY, INTERVAL_S, History, Sample, Sampler
from app.commissioning.status_page import StatusPage

T0 = 1_780_000_000.0


def _status(
    *, power: float | None = 1500.0, posts: str | None = None, waiting: int = 0, active: bool = False
) -> dict[str, Any]:
    return {
        "state": "ok",
        "server": {"connected": waiting == 0},
        "control": {
            "setpoint W": 2000.0 if active else None,
            "events": [{"mRID": "AA", "phase": "active" if active else "scheduled"}],
        },
        "inverter": {"power W": power, "state of charge %": 55.5},
        "telemetry": {
            "last post power": posts,
            "last post soc": None,
            "waiting power": waiting,
            "waiting soc": 1,
        },
    }


def test_the_ring_keeps_the_newest_samples_in_order_and_no_more() -> None:
    ring = History(capacity=5)
    for i in range(12):
        assert ring.record(Sample(T0 + i * 30, power_w=float(i), waiting=i, event=i % 2 == 0))
    got = list(ring.since(0))
    assert len(ring) == 5
    assert [s.power_w for s in got] == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert [s.event for s in got] == [False, True, False, True, False]
    assert [s.t for s in ring.since(T0 + 10 * 30)] == [T0 + 300, T0 + 330]


def test_missing_values_come_back_as_none() -> None:
    ring = History(capacity=3)
    ring.record(Sample(T0))
    (got,) = ring.since(0)
    assert got == Sample(T0)


def test_a_sample_older_than_the_newest_is_dropped_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ring = History(capacity=4)
    ring.record(Sample(T0 + 60, power_w=1.0))
    with caplog.at_level(logging.WARNING):
        assert not ring.record(Sample(T0, power_w=2.0))
    assert [s.power_w for s in ring.since(0)] == [1.0]
    assert len([r for r in caplog.records if "older than the newest" in r.message]) == 1


def test_samples_validate() -> None:
    with pytest.raises(ValueError, match="waiting"):
        Sample(T0, waiting=-1)
    with pytest.raises(ValueError, match="Unix time"):
        Sample(float("nan"))
    with pytest.raises(ValueError, match="capacity"):
        History(capacity=1)


def test_a_full_day_is_served_bounded_and_clamped_to_24_h() -> None:
    ring = History()
    days = 2  # twice the capacity: the first day is forgotten
    for i in range(days * CAPACITY):
        ring.record(Sample(T0 + i * INTERVAL_S, power_w=float(i), soc_pct=50.0, waiting=0, connected=True))
    now = T0 + (days * CAPACITY - 1) * INTERVAL_S
    day = ring.to_json(now, 24)
    assert day["count"] == CAPACITY == len(day["t"]) == len(day["power W"])
    assert day["t"][-1] == now and day["t"][0] == now - 24 * 3600
    assert ring.to_json(now, 1000)["count"] == CAPACITY  # clamped
    hour = ring.to_json(now, 1)
    assert hour["count"] == 121 and hour["hours"] == 1
    assert len(json.dumps(day)) < 400_000  # bounded: no more than one day of rows, ever
    assert ring.nbytes == History().nbytes < 150_000  # preallocated: a full ring costs what an empty one does


def test_the_sampler_reads_the_status_document() -> None:
    ring = History(capacity=10)
    sampler = Sampler(ring)
    first = sampler.observe(_status(posts="2026-01-01T00:00:00+00:00"), T0)
    assert first.power_w == 1500.0 and first.soc_pct == 55.5 and first.connected
    assert not first.posted  # nothing to compare with yet
    assert first.waiting == 1 and not first.event and first.setpoint_w is None
    same = sampler.observe(_status(posts="2026-01-01T00:00:00+00:00", waiting=3, active=True), T0 + 30)
    assert not same.posted and same.waiting == 4 and not same.connected
    assert same.event and same.setpoint_w == 2000.0
    moved = sampler.observe(_status(posts="2026-01-01T00:00:30+00:00", power=None), T0 + 60)
    assert moved.posted and moved.power_w is None
    assert [s.posted for s in ring.since(0)] == [False, False, True]


def test_the_sampler_survives_a_status_document_that_fails(caplog: pytest.LogCaptureFixture) -> None:
    ring = History(capacity=10)
    calls = iter([RuntimeError("boom"), RuntimeError("boom"), _status(), _status()])
    ticks = iter(T0 + i for i in range(100))

    def snapshot() -> dict[str, Any]:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    async def run() -> None:
        task = asyncio.create_task(
            Sampler(ring).run(snapshot, interval_s=0.001, wall_clock=lambda: next(ticks))
        )
        for _ in range(5000):
            if len(ring) >= 2:
                break
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    assert len(ring) == 2
    assert len([r for r in caplog.records if "cannot sample" in r.message]) == 1


async def test_api_history_serves_the_ring_and_refuses_bad_hours() -> None:
    ring = History()
    now = time.time()  # the listener's clock
    for i in range(200):
        ring.record(Sample(now - (199 - i) * 60, power_w=float(i)))

    async with (
        StatusPage(lambda: {"state": "ok"}, "127.0.0.1", 0, history=ring) as page,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(page.url + "api/history?hours=1") as reply:
            assert reply.status == 200
            body = await reply.json()
        assert body["count"] <= 61 and body["power W"][-1] == 199.0
        async with http.get(page.url + "api/history") as reply:
            assert (await reply.json())["count"] == 200
        for bad in ("0", "abc", "25", "nan", "-1"):
            async with http.get(page.url + f"api/history?hours={bad}") as reply:
                assert reply.status == 400, bad
        async with http.get(page.url) as reply:
            assert reply.status == 200
            assert "The last 24 hours" in await reply.text()
