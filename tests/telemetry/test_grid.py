"""The 30-s grid and the cadences on it are pure functions of the time."""

from __future__ import annotations

from datetime import UTC, datetime

from app.telemetry.grid import crossed, tick_at_or_after, tick_time
from app.telemetry.points import FREQUENCY, POWER


def test_ticks_fall_on_00_and_30() -> None:
    at = datetime(2026, 3, 2, 10, 0, 12, 500000, tzinfo=UTC)
    assert tick_time(tick_at_or_after(at, 30)) == datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    on = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
    assert tick_time(tick_at_or_after(on, 30)) == on


def test_cadence_boundaries_follow_the_rate_even_when_it_changes() -> None:
    base = 1_800_000_000  # a multiple of 300
    assert crossed(base, None, 300)
    assert not crossed(base + 270, base, 300)
    assert crossed(base + 300, base, 300)
    # a new rate of 120 s posts at its own next boundary, not 120 s after the last post
    assert crossed(base + 360, base + 300, 120)
    assert not crossed(base + 330, base + 300, 120)


def test_wire_resolution() -> None:
    assert FREQUENCY.to_wire(50.005) in (5000, 5001)
    assert FREQUENCY.to_wire(59.987) == 5999
    assert FREQUENCY.from_wire(6001) == 60.01
    assert POWER.to_wire(-1234.4) == -1234
