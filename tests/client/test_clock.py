"""ServerClock: the offset from a Time read, applied to an injected base clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.client.clock import ServerClock

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_offset_from_the_middle_of_the_round_trip() -> None:
    now = [T0]
    clock = ServerClock(lambda: now[0])
    assert clock.now() == T0 and not clock.synced
    clock.update(T0 + timedelta(seconds=61), sent=T0, received=T0 + timedelta(seconds=2))
    assert clock.offset == timedelta(seconds=60)
    now[0] = T0 + timedelta(hours=1)
    assert clock.now() == T0 + timedelta(hours=1, seconds=60)
    assert clock.local_now() == now[0] and clock.synced


def test_naive_server_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        ServerClock().update(datetime(2026, 1, 1), T0, T0)
