"""The polling loop: walk the tree when something is due, publish changed snapshots, back off on failure.

Failures are logged as transitions through Health (one line when the server goes away, one when
it is back); retries back off with full jitter and honour Retry-After. Clock and sleep are
injectable so a simulated hour runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from app.client import errors
from app.client.backoff import Backoff
from app.client.discovery import Discovery
from app.client.snapshot import ServerTree
from app.health import Health, Kind

_LOGGER = logging.getLogger(__name__)

#: never spin: even when something is already due, wait this long between walks
_MIN_SLEEP_S = 0.05
#: with nothing scheduled (should not happen), look again after this long
_IDLE_S = 60.0
#: the health name the server session reports under (its heartbeat and its problems)
SERVER_PART = "2030.5 server"
#: a long wait is cut into naps this long, with a heartbeat after each (the watchdog must see us)
BEAT_S = 30.0


class Poller:
    """Runs `discovery.walk()` at the pace of the pollRates and publishes each new ServerTree."""

    def __init__(
        self,
        discovery: Discovery,
        backoff: Backoff,
        health: Health,
        *,
        part: str = SERVER_PART,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._discovery = discovery
        self._backoff = backoff
        self._health = health
        self._part = part
        self._monotonic = monotonic
        self._sleep = sleep
        self._tree: ServerTree | None = None
        self._version = 0
        self._changed = asyncio.Condition()
        self._failing: str | None = None
        #: one walk at a time: the loop's, or an out-of-turn `refresh()`
        self._walking = asyncio.Lock()
        #: walks attempted and walks failed, for the status page and tests
        self.walks = 0
        self.failures = 0

    @property
    def tree(self) -> ServerTree | None:
        """The latest snapshot (None before the first successful walk)."""
        return self._tree

    async def run(self) -> None:
        """Poll forever (until cancelled)."""
        while True:
            delay = await self.step()
            while delay > 0:
                nap = min(delay, BEAT_S)
                await self._sleep(nap)
                delay -= nap
                self._health.beat(self._part)

    async def refresh(self, href: str) -> ServerTree | None:
        """Read `href` now, out of its turn (we just POSTed to it), through this poller; the new tree.

        The read restarts `href`'s own interval; everything else stays on its schedule.
        """
        self._discovery.schedule.make_due(href)
        await self.step()
        return self._tree

    async def step(self) -> float:
        """One walk; returns how long to wait before the next one."""
        async with self._walking:
            return await self._step()

    async def _step(self) -> float:
        self._health.beat(self._part)
        self.walks += 1
        try:
            tree = await self._discovery.walk()
        except errors.SepError as exc:
            self.failures += 1
            retry_after = exc.retry_after if isinstance(exc, errors.RetryLater) else None
            self._down(exc)
            return self._backoff.next_delay(retry_after)
        except Exception as exc:  # a bug must not stop polling: the control engine relies on it
            self.failures += 1
            if self._failing is None or not self._failing.startswith("bug:"):
                _LOGGER.exception("discovery walk failed unexpectedly")
            self._failing = f"bug: {exc!r}"
            self._health.problem(self._part, self._failing, Kind.SOFTWARE)
            return self._backoff.next_delay()
        self._up()
        self._backoff.reset()
        await self._publish(tree)
        due = self._discovery.next_due()
        if due is None:
            return _IDLE_S
        return max(due - self._monotonic(), _MIN_SLEEP_S)

    async def snapshots(self) -> AsyncIterator[ServerTree]:
        """Yield the current tree, then every changed one; a slow reader skips to the latest."""
        seen = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda last=seen: self._version != last)  # type: ignore[misc]
                seen = self._version
                tree = self._tree
            if tree is not None:
                yield tree

    async def wait_for(self, predicate: Callable[[ServerTree], bool]) -> ServerTree:
        """Wait until a published tree satisfies `predicate` (e.g. `lambda t: t.registered`)."""
        async for tree in self.snapshots():
            if predicate(tree):
                return tree
        raise AssertionError("unreachable")  # pragma: no cover

    async def _publish(self, tree: ServerTree) -> None:
        if tree == self._tree:
            self._tree = tree  # same content; keep the fresher read_at/time without waking anyone
            return
        async with self._changed:
            self._tree = tree
            self._version += 1
            self._changed.notify_all()

    def _down(self, exc: errors.SepError) -> None:
        # one reason per outage: Health logs the first, and again only if the kind of failure changes
        kind = type(exc).__name__
        if self._failing is None or not self._failing.startswith(kind + ":"):
            self._failing = f"{kind}: {exc}"
        self._health.problem(self._part, self._failing, exc.kind)

    def _up(self) -> None:
        self._failing = None
        self._health.ok(self._part)
