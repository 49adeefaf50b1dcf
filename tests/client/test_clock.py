"""ServerClock: the offset from a Time read, applied to an injected base clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from app.client.clock import ServerClock
from app.client.notices import Notices

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_offset_from_the_middle_of_the_round_trip() -> None:
    now = [T0]
    clock = ServerClock(lambda: now[0])
    assert clock.now() == T0 and not clock.synced
    # the server read 61 s (truncated) at a moment between our 0 s and 2 s: its clock was 59-62 s ahead
    clock.update(T0 + timedelta(seconds=61), sent=T0, received=T0 + timedelta(seconds=2))
    assert clock.offset == timedelta(seconds=60.5)
    now[0] = T0 + timedelta(hours=1)
    assert clock.now() == T0 + timedelta(hours=1, seconds=60.5)
    assert clock.local_now() == now[0] and clock.synced


def test_naive_server_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        ServerClock().update(datetime(2026, 1, 1), T0, T0)


def test_clocks_that_agree_within_the_resolution_keep_a_zero_offset() -> None:
    """TimeType truncates to whole seconds: a server 0.7 s into its second must not move us 0.7 s."""
    clock = ServerClock(lambda: T0)
    at = T0 + timedelta(seconds=0.7)
    clock.update(T0, sent=at - timedelta(milliseconds=20), received=at)
    assert clock.offset == timedelta(0)


def test_a_fitting_offset_is_kept_steady_across_reads() -> None:
    clock = ServerClock(lambda: T0)
    clock.update(T0 + timedelta(seconds=100), sent=T0, received=T0 + timedelta(milliseconds=10))
    first = clock.offset
    assert timedelta(seconds=99.99) <= first <= timedelta(seconds=101)
    # a later read 0.4 s into the server's second is still consistent: no jitter
    later = T0 + timedelta(seconds=30.4)
    clock.update(T0 + timedelta(seconds=130), sent=later - timedelta(milliseconds=10), received=later)
    assert clock.offset == first
    # a real step of the server's clock is followed
    clock.update(T0 + timedelta(seconds=200), sent=later, received=later)
    assert timedelta(seconds=169) <= clock.offset <= timedelta(seconds=171)


def test_a_server_clock_76_years_ahead_is_followed_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.client")
    notices = Notices()
    clock = ServerClock(lambda: T0, max_offset_s=300, notices=notices)
    ahead = timedelta(days=76 * 365)
    for _ in range(3):  # read again and again: one line, not one per read
        clock.update(T0 + ahead, sent=T0, received=T0)
    assert abs(clock.offset - ahead) <= timedelta(seconds=1) and clock.distrusted
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            logging.WARNING,
            f"server clock is {clock.offset.total_seconds():+.0f} s from ours (more than 300 s): "
            "following it, but events may look ended",
        )
    ]
    assert list(notices.current()) == ["server clock"]
    # the utility fixes its clock: one line, and the status page no longer shows it
    clock.update(T0 + timedelta(seconds=1), sent=T0, received=T0)
    assert not clock.distrusted and notices.current() == {}
    assert [r.levelno for r in caplog.records[1:]] == [logging.INFO, logging.INFO]
