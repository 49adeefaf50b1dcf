"""A recording battery inverter: the HAL's sim backend that also keeps a log of every command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.control.schedule import ProgramControls
from app.sep.response import DERControlResponse
from hal.clock import WallClock, utc_now
from hal.inverter.battery import BatterySpec
from wattsmart_lab.sim import SimInverter


class RecordingInverter(SimInverter):
    """SimInverter plus `writes` [(time, watts asked)] and `releases` [time], stamped by its wall clock."""

    def __init__(self, spec: BatterySpec | None = None, *, wall_clock: WallClock = utc_now) -> None:
        super().__init__(spec or BatterySpec(), revert_timeout_s=300.0, wall_clock=wall_clock)
        self.writes: list[tuple[datetime, float]] = []
        self.releases: list[datetime] = []

    async def set_active_power(self, watts: float) -> float:
        held = await super().set_active_power(watts)
        self.writes.append((self._wall_clock(), watts))
        return held

    async def release(self) -> None:
        await super().release()
        self.releases.append(self._wall_clock())

    @property
    def watts(self) -> list[float]:
        """The commanded watts, in order."""
        return [w for _, w in self.writes]


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Wait (polling briefly) until `predicate()` holds; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


@dataclass(frozen=True)
class FakeTree:
    """A snapshot as the session publishes it."""

    programs: tuple[ProgramControls, ...]
    read_at: datetime | None


class FakeServer:
    """The server port in-process: our clock is the server's, `publish()` feeds snapshots, posts are kept.

    The first `failures` posts are refused, as by an unreachable server.
    """

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.posted: list[tuple[str, DERControlResponse]] = []
        self.tree: FakeTree | None = None
        self._queue: asyncio.Queue[FakeTree] = asyncio.Queue()

    def now(self) -> datetime:
        return utc_now()

    async def snapshots(self) -> AsyncIterator[FakeTree]:
        while True:
            yield await self._queue.get()

    def publish(self, programs: Sequence[ProgramControls]) -> None:
        self.tree = FakeTree(tuple(programs), self.now())
        self._queue.put_nowait(self.tree)

    async def post(self, href: str, obj: object) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server unreachable")
        assert isinstance(obj, DERControlResponse)
        self.posted.append((href, obj))
