"""Backoff: full jitter under a doubling ceiling, a cap, and Retry-After as a floor."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from app.client.backoff import Backoff, parse_retry_after


def test_full_jitter_under_a_doubling_ceiling_up_to_the_cap() -> None:
    backoff = Backoff(cap_s=300.0, rng=random.Random(7))
    for n in range(20):
        ceiling = min(300.0, 2.0**n)
        assert 0.0 <= backoff.next_delay() <= ceiling


def test_jitter_spreads_delays() -> None:
    delays = [Backoff(cap_s=300.0, rng=random.Random(seed), failures=10).next_delay() for seed in range(200)]
    assert min(delays) < 60 and max(delays) > 240  # uniform over [0, 300]


def test_retry_after_is_a_floor_and_reset_starts_over() -> None:
    backoff = Backoff(cap_s=300.0, rng=random.Random(1))
    assert backoff.next_delay(retry_after=120.0) >= 120.0
    assert backoff.next_delay(retry_after=10_000.0) == 3600.0  # a day-long ask is a server mistake
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() <= 1.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 26 Nov 2026 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
