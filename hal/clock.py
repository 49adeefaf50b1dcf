"""The one seam for reading the wall clock, so logic can be handed a fake one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

WallClock = Callable[[], datetime]
"""A callable returning the current time as a timezone-aware UTC datetime."""


def utc_now() -> datetime:
    """Current time, UTC, timezone-aware."""
    return datetime.now(UTC)
