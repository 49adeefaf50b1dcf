"""The installer's status page: read-only, no secrets, works on a phone; the same data as JSON.

`GET /` is a self-refreshing HTML page (app.commissioning.page); `GET /api/status` is the JSON it is
rendered from; `GET /api/history?hours=24` is the last day of the in-memory history ring. The page is
built from one `snapshot()` callable and the ring so it can never show something the JSON does not.

This module is the listener; the HTTP application (`app.commissioning.web`, aiohttp.web, ~2 MB
resident) is loaded when the first connection arrives. That connection's bytes wait (bounded) for
the few milliseconds the load takes and are then handed to the application's request handler.

In commissioning mode it is reachable from the whole site network, so it holds its limits there:
at most `MAX_CONNECTIONS` at a time (more are reset at once, costing no file descriptor), a
connection that has not sent a request within `REQUEST_TIMEOUT_S` or lives past
`MAX_CONNECTION_S` is closed, headers and bodies are small, a `Host:` that is not an IP address
or localhost is refused (DNS rebinding), and no software version is advertised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from aiohttp import web as aiohttp_web

    from app.commissioning.history import History
    from app.commissioning.web import Snapshot

_LOGGER = logging.getLogger(__name__)

#: open connections at once (a phone refreshing every 5 s needs one or two)
MAX_CONNECTIONS: Final = 16
#: a connection must have sent a complete request by then ...
REQUEST_TIMEOUT_S: Final = 5.0
#: ... is closed this long after its last response (keep-alive) ...
IDLE_TIMEOUT_S: Final = 5.0
#: ... and never lives longer than this
MAX_CONNECTION_S: Final = 60.0
#: connections the kernel queues before we accept them
BACKLOG: Final = 16
#: refused connections and requests are logged at most this often (with a count)
_LOG_EVERY_S: Final = 60.0


class _Throttled:
    """Counts an event and logs it at most once per `_LOG_EVERY_S` (a flood writes one line a minute)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._unlogged = 0
        self._logged_at = -_LOG_EVERY_S
        self.count = 0

    def __call__(self, detail: str) -> None:
        self.count += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:
            _LOGGER.warning(
                "status page: %s (%d since the last report; last: %s)", self._text, self._unlogged, detail
            )
            self._logged_at, self._unlogged = now, 0


#: bytes a connection may send before the application has taken it (a GET is far smaller; aiohttp
#: refuses big headers itself once it has them)
WAITING_BYTES: Final = 65536


class StatusPage:
    """The page's HTTP listener as an async context manager; `serve_on` moves it to another address."""

    def __init__(
        self,
        snapshot: Snapshot,
        host: str,
        port: int,
        *,
        max_connections: int = MAX_CONNECTIONS,
        history: History | None = None,
        zone: tzinfo = UTC,
    ) -> None:
        self._snapshot, self._history, self._zone = snapshot, history, zone
        self._bad_host = _Throttled("requests with a foreign Host refused")
        self._over_limit = _Throttled(f"connections over the limit of {max_connections} reset")
        #: the application, once the first connection has loaded it
        self._web: tuple[aiohttp_web.AppRunner, aiohttp_web.Server] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._waiting: set[_Waiting] = set()
        self.host, self.port = host, port
        self.max_connections = max_connections
        self._listener: asyncio.Server | None = None
        self.url = ""

    @property
    def refused(self) -> int:
        """Connections reset because the limit was reached (since start)."""
        return self._over_limit.count

    @property
    def connections(self) -> int:
        """Connections open now (those waiting for the application included)."""
        served = len(self._web[1].connections) if self._web is not None else 0
        return served + len(self._waiting)

    @property
    def loaded(self) -> bool:
        """Whether the HTTP application has been loaded (a connection has come since start)."""
        return self._web is not None

    async def __aenter__(self) -> StatusPage:
        await self.serve_on(self.host)
        return self

    def _protocol(self) -> asyncio.BaseProtocol:
        """A handler for a new connection, or a reset when the limit is reached."""
        if self.connections >= self.max_connections:
            self._over_limit(f"{self.connections} open")
            return _Reset()
        if self._web is None:
            waiting = _Waiting(self._waiting.discard)
            self._waiting.add(waiting)
            if self._loading is None:
                self._loading = asyncio.get_running_loop().create_task(self._load(), name="status page load")
            return waiting
        return self._handler(self._web[1])

    def _handler(self, server: aiohttp_web.Server) -> asyncio.Protocol:
        from app.commissioning import web  # loaded already: a dictionary lookup

        loop = asyncio.get_running_loop()
        handler = web.Handler(server, loop=loop, **web.handler_args(IDLE_TIMEOUT_S))
        loop.call_later(REQUEST_TIMEOUT_S, web.close_if_silent, handler)
        loop.call_later(MAX_CONNECTION_S, handler.force_close)
        return handler

    async def _load(self) -> None:
        """Load the application, then hand it the connections that came meanwhile."""
        try:
            from app.commissioning import web  # aiohttp.web: ~2 MB, only once someone opens the page

            runner = web.make_runner(
                self._snapshot, self._history, self._zone, self._bad_host, IDLE_TIMEOUT_S
            )
            await runner.setup()
            assert runner.server is not None  # set by setup()
        except Exception as exc:  # the page is for people; the battery goes on without it
            _LOGGER.error("status page: cannot load its application: %r", exc)
            for waiting in list(self._waiting):
                waiting.abort()
            self._loading = None  # the next connection tries again
            return
        self._web = (runner, runner.server)
        for waiting in list(self._waiting):
            waiting.hand_over(self._handler(runner.server))

    async def serve_on(self, host: str) -> None:
        """Listen on `host` (same port) instead of the current address; connections to the old one end."""
        await self._stop_listening()
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._protocol, host, self.port, backlog=BACKLOG, reuse_address=True
        )
        sockets = self._listener.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]  # port 0 picked one: keep it for a move
        self.host = host
        self.url = f"http://{host}:{self.port}/"
        _LOGGER.info("status page on %s", self.url)

    async def _stop_listening(self) -> None:
        if self._listener is None:
            return
        self._listener.close()
        self._listener = None
        for waiting in list(self._waiting):
            waiting.abort()
        for handler in self._web[1].connections if self._web is not None else ():
            handler.force_close()

    async def __aexit__(self, *exc: object) -> None:
        await self._stop_listening()
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)
        if self._web is not None:
            await self._web[0].cleanup()


class _Waiting(asyncio.Protocol):
    """A connection that came before the application was loaded: its bytes wait until a handler takes it."""

    def __init__(self, gone: Callable[[_Waiting], None]) -> None:
        self._gone = gone
        self._transport: asyncio.Transport | None = None
        self._handler: asyncio.Protocol | None = None
        self._received = bytearray()
        self._eof = self._lost = self._aborted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._aborted:
            transport.abort()
        elif self._handler is not None:  # the application was ready before the loop told us of the socket
            self._pass_on()

    def data_received(self, data: bytes) -> None:
        self._received += data
        if len(self._received) > WAITING_BYTES:
            self.abort()

    def eof_received(self) -> bool:
        self._eof = True
        return True  # keep the socket open for the answer; the handler decides once it has the request

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport, self._lost = None, True
        self._gone(self)

    def abort(self) -> None:
        """Reset the connection (the application could not be loaded, or the page stops)."""
        self._aborted = True
        if self._transport is not None:
            self._transport.abort()

    def hand_over(self, handler: asyncio.Protocol) -> None:
        """Give the connection and what it has sent so far to `handler` (once it is connected)."""
        self._handler = handler
        if self._transport is not None:
            self._pass_on()

    def _pass_on(self) -> None:
        transport, handler = self._transport, self._handler
        assert transport is not None and handler is not None
        self._gone(self)
        if self._lost or transport.is_closing():
            return
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._received:
            handler.data_received(bytes(self._received))
        if self._eof:
            handler.eof_received()


class _Reset(asyncio.Protocol):
    """Over the limit: reset the connection at once, so it holds no file descriptor."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]
