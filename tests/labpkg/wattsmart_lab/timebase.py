"""Virtual server time for tests, the bench and demos: a `Timebase` that moves only when driven."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import datetime, timedelta


class SimulatedTimebase:
    """Virtual server time for tests, the bench and demos; `run_until` drives it, sockets keep working.

    Time only moves when all `participants` (the service's loops) sleep on this clock, so network
    round trips to the lab server take no virtual time and nothing ever sleeps for real.
    """

    def __init__(self, start: datetime, participants: int = 1, real_pause_s: float = 0.0) -> None:
        self._now = start
        self._participants = participants
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        #: real seconds to wait before each wake-up (to leave a window between steps)
        self.real_pause_s = real_pause_s

    def now(self) -> datetime:
        """The simulated server time."""
        return self._now

    @property
    def participants(self) -> int:
        """How many tasks must sleep on this clock before it moves (e.g. a poller joins the service)."""
        return self._participants

    @participants.setter
    def participants(self, count: int) -> None:
        self._participants = count

    def monotonic(self) -> float:
        """The simulated time as monotonic seconds (for a poller run on this clock)."""
        return self._now.timestamp()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep` on this clock (for a poller run on it)."""
        await self.sleep_until(self._now + timedelta(seconds=seconds))

    def set(self, when: datetime) -> None:
        """Jump to `when` while nothing runs on this clock (e.g. a process is restarted later)."""
        if self._sleepers:
            raise RuntimeError("cannot jump while something sleeps on the clock")
        self._now = when

    async def sleep_until(self, when: datetime) -> None:
        """Wait until the driver has moved time to `when`."""
        if when <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (when, next(self._seq), future)
        heapq.heappush(self._sleepers, entry)
        try:
            await future
        finally:
            if entry in self._sleepers:  # cancelled while asleep
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def _settle(self, timeout_s: float) -> None:
        """Wait (really) until every participant sleeps on this clock."""
        deadline = time.monotonic() + timeout_s
        spins = 0
        while len(self._sleepers) < self._participants:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service did not go idle within {timeout_s} s at {self._now}")
            spins += 1
            await asyncio.sleep(0 if spins < 50 else 0.001)

    async def run_until(self, end: datetime, timeout_s: float = 20.0) -> None:
        """Advance virtual time to `end`, waking sleepers in time order."""
        while True:
            await self._settle(timeout_s)
            if self._sleepers[0][0] > end:
                self._now = max(self._now, end)
                return
            when, _, future = heapq.heappop(self._sleepers)
            if self.real_pause_s:
                await asyncio.sleep(self.real_pause_s)
            self._now = max(self._now, when)
            future.set_result(None)

    async def run_for(self, seconds: float) -> None:
        """Advance virtual time by `seconds`."""
        await self.run_until(self._now + timedelta(seconds=seconds))
