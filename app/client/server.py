"""The server port's one implementation: the 2030.5 session in force, whichever certificate it runs on.

    server = Server(server_clock)
    async with session, server.serving(session):   # polls `session`, makes it the one in force
        async for tree in server.snapshots(): ...
        await server.post(control.replyTo, response)

A certificate switch ends one `serving` block and starts another: readers of `snapshots()` move
over to the new session; a request while no session is in force fails as `ConnectionFailed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

from app.client.clock import ServerClock
from app.client.errors import ConnectionFailed
from app.client.session import Session
from app.client.snapshot import ServerTree

T = TypeVar("T")


class Server:
    """What control and telemetry hold (an `app.client.port.ServerPort`)."""

    def __init__(self, server_clock: ServerClock) -> None:
        self.server_clock = server_clock
        self.session: Session | None = None
        self.ready = asyncio.Event()
        self._switched = asyncio.Event()

    def _current(self) -> Session:
        if self.session is None:
            raise ConnectionFailed("no session yet (starting, or switching certificate)")
        return self.session

    def now(self) -> datetime:
        """Server time (our clock until the first Time resource is read)."""
        return self.server_clock.now()

    async def get(self, href: str, cls: type[T], params: Mapping[str, str | int] | None = None) -> T:
        """GET through the current session."""
        return await self._current().http.get(href, cls, params)

    async def post(self, href: str, obj: object) -> str | None:
        """POST through the current session."""
        return await self._current().http.post(href, obj)

    async def put(self, href: str, obj: object) -> None:
        """PUT through the current session."""
        await self._current().http.put(href, obj)

    async def refresh(self, href: str) -> ServerTree | None:
        """Re-read `href` through the current session's poller (after a POST to it)."""
        return await self._current().poller.refresh(href)

    @property
    def tree(self) -> ServerTree | None:
        """The latest server snapshot."""
        return self.session.poller.tree if self.session is not None else None

    def replace(self, session: Session | None) -> None:
        """Switch to another session (or none); readers of `snapshots()` move over to it."""
        self.session = session
        if session is None:
            self.ready.clear()
        else:
            self.ready.set()
        self._switched.set()
        self._switched = asyncio.Event()

    @asynccontextmanager
    async def serving(self, session: Session) -> AsyncIterator[Session]:
        """Make an open `session` the one in force and run its poller until the block ends."""
        self.replace(session)
        poll = asyncio.create_task(session.poller.run(), name="2030.5 poller")
        try:
            yield session
        finally:
            self.replace(None)
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)

    async def wait_for(self, predicate: Callable[[ServerTree], bool]) -> ServerTree:
        """The first snapshot satisfying `predicate` (e.g. `lambda t: t.registered`)."""
        async for tree in self.snapshots():
            if predicate(tree):
                return tree
        raise AssertionError("unreachable")  # pragma: no cover

    async def snapshots(self) -> AsyncIterator[ServerTree]:
        """Each new snapshot, across session switches (a switch re-yields the new session's tree)."""
        while True:
            await self.ready.wait()
            session, switched = self.session, self._switched
            if session is None:
                continue
            trees = aiter(session.poller.snapshots())
            while not switched.is_set():
                nxt = asyncio.ensure_future(anext(trees))
                gone = asyncio.ensure_future(switched.wait())
                try:
                    await asyncio.wait({nxt, gone}, return_when=asyncio.FIRST_COMPLETED)
                finally:  # also when our consumer is cancelled: leave no future pending
                    gone.cancel()
                    if not nxt.done():
                        nxt.cancel()
                        await asyncio.gather(nxt, return_exceptions=True)
                if nxt.cancelled():
                    break
                yield nxt.result()


@asynccontextmanager
async def serve(session: Session) -> AsyncIterator[Server]:
    """One session as the server port, opened, polled and closed here (tools, tests, the bench)."""
    server = Server(session.server_clock)
    async with session, server.serving(session):
        yield server
