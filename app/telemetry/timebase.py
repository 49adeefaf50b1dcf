"""The time the telemetry runs on: the server's clock, and a way to wait for a moment of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol


class Timebase(Protocol):
    """Server time, and sleeping until a given server time (tests substitute a simulated one)."""

    def now(self) -> datetime:
        """The server's current time, aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return at (or soon after) server time `when`."""
        ...


class ServerTimebase:
    """A Timebase over a server-clock function (e.g. `ServerClock.now`) and the event loop's sleep."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def now(self) -> datetime:
        """The server's current time."""
        return self._now()

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until `when`; may wake early if the server offset moves meanwhile (callers re-check)."""
        delay = (when - self._now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
