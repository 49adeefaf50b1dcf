"""The installer's status page: read-only, no secrets, works on a phone; the same data as JSON.

`GET /` is a self-refreshing HTML page (app.commissioning.page); `GET /api/status` is the JSON it is
rendered from; `GET /api/history?hours=24` is the last day of the in-memory history ring. The page is
built from one `snapshot()` callable and the ring so it can never show something the JSON does not.

In commissioning mode it is reachable from the whole site network, so it holds its limits there:
at most `MAX_CONNECTIONS` at a time (more are reset at once, costing no file descriptor), a
connection that has not sent a request within `REQUEST_TIMEOUT_S` or lives past
`MAX_CONNECTION_S` is closed, headers and bodies are small, a `Host:` that is not an IP address
or localhost is refused (DNS rebinding), and no software version is advertised.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, tzinfo
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from app.commissioning.history import HISTORY_S, History
from app.commissioning.page import ChartCache, render_page

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
#: the only requests are GETs: no body worth having, small headers
MAX_BODY_BYTES: Final = 1024
_HEADER_LIMITS: Final = {"max_line_size": 2048, "max_field_size": 2048, "max_headers": 32}
SERVER_HEADER: Final = "wattsmart-gateway"
#: refused connections and requests are logged at most this often (with a count)
_LOG_EVERY_S: Final = 60.0


class _OneLinePerMinute(logging.Filter):
    """aiohttp logs a traceback per malformed request: keep one line a minute, without the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._passed_at = -_LOG_EVERY_S
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._passed_at < _LOG_EVERY_S:
            self._dropped += 1
            return False
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {record.exc_info[1]!r}".replace("%", "%%")
            record.args = ()
        record.exc_info = record.exc_text = None
        if self._dropped:
            record.msg += f" ({self._dropped} more since the last report)"
        self._passed_at, self._dropped = now, 0
        return True


#: the logger aiohttp's request handler reports bad requests and handler errors to
_HTTP_LOGGER: Final = logging.getLogger(f"{__name__}.http")
_HTTP_LOGGER.addFilter(_OneLinePerMinute())


class _Handler(RequestHandler):
    """aiohttp's handler, but error answers (400 for garbage) do not advertise versions either."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers["Server"] = SERVER_HEADER
        return response


Snapshot = Callable[[], Mapping[str, Any]]


def host_allowed(host: str | None) -> bool:
    """True for a Host header naming an IP address or localhost (any port); a DNS name is refused."""
    if not host:
        return False
    if host.startswith("["):  # [v6] or [v6]:port
        name = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:  # name:port or v4:port
        name = host.split(":", 1)[0]
    else:  # a name, a v4 address, or a bare v6 address
        name = host
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


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


def make_app(
    snapshot: Snapshot,
    history: History | None = None,
    zone: tzinfo = UTC,
    clock: Callable[[], float] = time.time,
    refused: Callable[[str], None] | None = None,
) -> web.Application:
    """The aiohttp application serving the page, the JSON and the history (times shown in `zone`)."""
    history = history if history is not None else History()
    charts = ChartCache(history, zone)

    @web.middleware
    async def check_host(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if not host_allowed(request.host):
            if refused is not None:
                refused(f"Host {request.host!r} from {request.remote}")
            return web.Response(status=421, text="misdirected request\n")
        response: web.StreamResponse = await handler(request)
        return response

    async def no_banner(_: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_HEADER

    async def page(_: web.Request) -> web.Response:
        now = clock()
        text = render_page(snapshot(), charts.html(now), now, zone)
        return web.Response(text=text, content_type="text/html")

    async def history_api(request: web.Request) -> web.Response:
        try:
            hours = float(request.query.get("hours", "24"))
        except ValueError:
            hours = float("nan")
        if not 0 < hours <= HISTORY_S / 3600:
            raise web.HTTPBadRequest(text=f"hours must be a number above 0 and at most {HISTORY_S // 3600}\n")
        return web.Response(text=history.to_json_text(clock(), hours), content_type="application/json")

    async def api(_: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(snapshot(), default=str, indent=1), content_type="application/json"
        )

    app = web.Application(middlewares=[check_host], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(no_banner)
    app.router.add_get("/", page)
    app.router.add_get("/api/status", api)
    app.router.add_get("/api/history", history_api)
    return app


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
        self._bad_host = _Throttled("requests with a foreign Host refused")
        self._over_limit = _Throttled(f"connections over the limit of {max_connections} reset")
        self._handler_args: dict[str, Any] = {
            "access_log": None,
            "keepalive_timeout": IDLE_TIMEOUT_S,
            "logger": _HTTP_LOGGER,
            **_HEADER_LIMITS,
        }
        app = make_app(snapshot, history, zone, refused=self._bad_host)
        self._runner = web.AppRunner(app, **self._handler_args)
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
        """Connections open now."""
        server = self._runner.server
        return len(server.connections) if server is not None else 0

    async def __aenter__(self) -> StatusPage:
        await self._runner.setup()
        try:
            await self.serve_on(self.host)
        except BaseException:
            await self._runner.cleanup()
            raise
        return self

    def _protocol(self) -> asyncio.BaseProtocol:
        """A handler for a new connection, or a reset when the limit is reached."""
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            self._over_limit(f"{len(server.connections)} open")
            return _Reset()
        loop = asyncio.get_running_loop()
        handler = _Handler(server, loop=loop, **self._handler_args)
        loop.call_later(REQUEST_TIMEOUT_S, _close_if_silent, handler)
        loop.call_later(MAX_CONNECTION_S, handler.force_close)
        return handler

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
        server = self._runner.server
        for handler in server.connections if server is not None else ():
            handler.force_close()

    async def __aexit__(self, *exc: object) -> None:
        await self._stop_listening()
        await self._runner.cleanup()


class _Reset(asyncio.Protocol):
    """Over the limit: reset the connection at once, so it holds no file descriptor."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


def _close_if_silent(handler: RequestHandler) -> None:
    """Close a connection that has not completed a request yet (idle or slow-header floods)."""
    if getattr(handler, "_request_count", 1) == 0:  # aiohttp counts a request once its headers are in
        handler.force_close()
