"""The 2030.5 session the rest of the gateway uses: snapshots in, posts and puts out, server time.

    async with Session(config.server, health=health) as session:
        tree = await session.wait_for(lambda t: t.registered)
        async for tree in session.snapshots(): ...
        await session.post(control.replyTo, response)
        await session.put(tree.der.DERStatusLink.href, status)
        now = session.now()            # server time

One HTTP session and one polling task per process, both owned here and closed on exit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

from app.client.backoff import Backoff
from app.client.clock import ServerClock
from app.client.discovery import Discovery
from app.client.errors import TlsConfigError
from app.client.http import HttpClient
from app.client.identity import DeviceIdentity, identity_of_pem_file
from app.client.notices import Notices
from app.client.poller import Poller
from app.client.snapshot import ServerTree
from app.config import ServerConfig
from app.health import Health
from app.sep.identity import IdentityError

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


class Session:
    """Mutual-TLS link to the utility's server: discovery, polling, and writes.

    With `poll=False` no task is started here: the caller runs `session.poller.run()` itself (the
    gateway's "link" part does, beside its identity watch; the supervisor restarts that part if it dies).
    """

    def __init__(
        self,
        server: ServerConfig,
        *,
        health: Health | None = None,
        rng: random.Random | None = None,
        clock: ServerClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll: bool = True,
        notices: Notices | None = None,
    ) -> None:
        self.server = server
        #: server values bounded or distrusted (capped pollRates, ...), for the status page
        self.notices = notices if notices is not None else Notices()
        try:
            self.identity: DeviceIdentity = identity_of_pem_file(server.cert_file)
        except IdentityError as exc:
            raise TlsConfigError(str(exc)) from None
        self._poll = poll
        self.clock = clock or ServerClock(max_offset_s=server.max_clock_offset_s, notices=self.notices)
        self.health = health or Health()
        rng = rng or random.Random()
        self.http = HttpClient(server)
        self.discovery = Discovery(
            self.http,
            server.dcap_url,
            self.identity,
            self.clock,
            monotonic=monotonic,
            rng=rng,
            default_poll_rate_s=server.default_poll_rate_s,
            min_rate_s=server.min_rate_s,
            max_rate_s=server.max_rate_s,
            notices=self.notices,
        )
        self.poller = Poller(
            self.discovery,
            Backoff(cap_s=server.max_backoff_s, rng=rng),
            self.health,
            monotonic=monotonic,
            sleep=sleep,
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.http.__aenter__()
        if self._poll:
            self._task = asyncio.create_task(self.poller.run(), name="2030.5 poller")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop polling and close the HTTP session."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # gather: the task's own CancelledError is collected, a cancel of close() itself is not
            await asyncio.gather(task, return_exceptions=True)
        await self.http.close()

    # --- reading ---------------------------------------------------------------------------------

    @property
    def tree(self) -> ServerTree | None:
        """The latest snapshot of the server's tree (None before the first successful walk)."""
        return self.poller.tree

    def snapshots(self) -> AsyncIterator[ServerTree]:
        """The current tree and every changed one after it."""
        return self.poller.snapshots()

    async def wait_for(self, predicate: Callable[[ServerTree], bool]) -> ServerTree:
        """The first published tree satisfying `predicate`."""
        return await self.poller.wait_for(predicate)

    def now(self) -> datetime:
        """Server time (aware UTC): every schedule decision uses this."""
        return self.clock.now()

    async def refresh(self, href: str) -> ServerTree | None:
        """Re-read `href` through the poller now (after a POST that changed it); the new tree."""
        return await self.poller.refresh(href)

    # --- writing (errors from app.client.errors say what to do) ----------------------------------

    async def get(self, href: str, cls: type[T]) -> T:
        """GET one resource outside the polling schedule (use sparingly: pollRate applies)."""
        return await self.http.get(href, cls)

    async def post(self, href: str, obj: object) -> str | None:
        """POST a model (DERControlResponse, MirrorUsagePoint, readings); returns Location if any."""
        return await self.http.post(href, obj)

    async def put(self, href: str, obj: object) -> None:
        """PUT a model (DERStatus, DERCapability, DERSettings, DERAvailability)."""
        await self.http.put(href, obj)

    async def delete(self, href: str) -> None:
        """DELETE a resource we created."""
        await self.http.delete(href)
