"""One 2030.5 session on one client certificate: its HTTP client, discovery and poller.

    async with Session(config.server, health=health) as session:   # opens and closes the HTTP client
        tree = await session.discovery.walk()                        # one walk (the `check` command)

Control and telemetry never hold a Session: they hold the server port (`app.client.port`), whose
one implementation, `app.client.server.Server`, runs a session's poller while it is in force.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
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
from app.config import ServerConfig
from app.health import Health
from app.sep.identity import IdentityError

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


class Session:
    """Mutual TLS to the utility's server on one certificate: `http`, `discovery` and `poller`.

    No task is started here: `Server.serving(session)` runs `poller.run()` while the session is in force.
    """

    def __init__(
        self,
        server: ServerConfig,
        *,
        health: Health | None = None,
        rng: random.Random | None = None,
        server_clock: ServerClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        notices: Notices | None = None,
    ) -> None:
        self.server = server
        #: server values bounded or distrusted (capped pollRates, ...), for the status page
        self.notices = notices if notices is not None else Notices()
        try:
            self.identity: DeviceIdentity = identity_of_pem_file(server.cert_file)
        except IdentityError as exc:
            raise TlsConfigError(str(exc)) from None
        self.server_clock = server_clock or ServerClock(
            max_offset_s=server.max_clock_offset_s, notices=self.notices
        )
        self.health = health or Health()
        rng = rng or random.Random()
        self.http = HttpClient(server)
        self.discovery = Discovery(
            self.http,
            server.dcap_url,
            self.identity,
            self.server_clock,
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

    async def __aenter__(self) -> Self:
        await self.http.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()
