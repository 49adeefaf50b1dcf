"""PollSchedule: pure "what is due when" on literal times and a seeded rng."""

from __future__ import annotations

import itertools
import random

import pytest

from app.client.poll_schedule import MIN_POLL_RATE_S, PollSchedule, effective_rate


def test_effective_rate_inherits_and_has_a_floor() -> None:
    assert effective_rate(60, 900) == 60
    assert effective_rate(None, 300) == 300
    assert effective_rate(0, 900) == MIN_POLL_RATE_S


def test_due_after_rate_plus_a_small_phase() -> None:
    schedule = PollSchedule(random.Random(3))
    assert schedule.is_due("/derp/0/derc", 0.0)  # never read
    schedule.record("/derp/0/derc", 100.0, 60)
    due = schedule.due_at("/derp/0/derc")
    assert due is not None and 160.0 <= due <= 166.0
    assert not schedule.is_due("/derp/0/derc", 159.9)
    assert schedule.is_due("/derp/0/derc", due)
    assert schedule.next_due() == due


def test_phase_is_per_resource_and_stable() -> None:
    schedule = PollSchedule(random.Random(5))
    for n in range(50):
        schedule.record(f"/r/{n}", 0.0, 900)
    dues = [schedule.due_at(f"/r/{n}") for n in range(50)]
    assert len(set(dues)) == 50  # spread, not all in the same second
    assert all(d is not None and 900 <= d <= 930 for d in dues)
    schedule.record("/r/0", 1000.0, 900)
    first = schedule.due_at("/r/0")
    schedule.record("/r/0", 2000.0, 900)
    second = schedule.due_at("/r/0")
    assert first is not None and second is not None
    assert second - first == pytest.approx(1000.0)


def test_a_simulated_hour_never_polls_faster_than_the_rate() -> None:
    schedule = PollSchedule(random.Random(11))
    reads: dict[str, list[float]] = {"/tm": [], "/derc": []}
    rates = {"/tm": 300, "/derc": 60}
    t = 0.0
    while t <= 3600:
        for href, times in reads.items():
            if schedule.is_due(href, t):
                times.append(t)
                schedule.record(href, t, rates[href])
        t += 0.5
    for href, times in reads.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= rates[href]
        assert len(times) >= 3600 // (rates[href] * 1.1 + 1)


def test_make_due_and_keep_only() -> None:
    schedule = PollSchedule(random.Random(1))
    schedule.record("/a", 0.0, 900)
    schedule.record("/b", 0.0, 900)
    schedule.make_due("/a")
    assert schedule.is_due("/a", 1.0) and not schedule.is_due("/b", 1.0)
    schedule.keep_only({"/a"})
    assert "/b" not in schedule and "/a" in schedule
