"""The wall-clock grid of server time: sample ticks and the post/status cadences that ride on them."""

from __future__ import annotations

from datetime import UTC, datetime


def tick_at_or_after(now: datetime, interval_s: int) -> int:
    """The first grid tick (epoch seconds, a multiple of `interval_s`) at or after `now`."""
    seconds = now.timestamp()
    tick = int(seconds // interval_s) * interval_s
    return tick if tick >= seconds else tick + interval_s


def tick_time(tick: int) -> datetime:
    """A tick as an aware UTC datetime."""
    return datetime.fromtimestamp(tick, UTC)


def crossed(tick: int, last: int | None, period_s: int) -> bool:
    """True when `tick` lies in a later `period_s` slot of the grid than `last` (None = never done).

    Slots are aligned to the epoch, so a 300-s post rate posts at :00, :05, … of server time, and a
    new rate takes effect at its own next boundary without drifting.
    """
    if last is None:
        return True
    return tick // max(period_s, 1) > last // max(period_s, 1)
