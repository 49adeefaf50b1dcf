"""The installer's status page: read-only, no secrets, works on a phone; the same data as JSON.

`GET /` is a small self-refreshing HTML page; `GET /api/status` is the JSON it is rendered from.
The page is built from one `snapshot()` callable so it can never show something the JSON does not.

In commissioning mode it is reachable from the whole site network, so it holds its limits there:
at most `MAX_CONNECTIONS` at a time (more are reset at once, costing no file descriptor), a
connection that has not sent a request within `REQUEST_TIMEOUT_S` or lives past
`MAX_CONNECTION_S` is closed, headers and bodies are small, a `Host:` that is not an IP address
or localhost is refused (DNS rebinding), and no software version is advertised.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

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

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>Wattsmart gateway</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;padding:1rem;background:#f4f5f7;color:#111}}
h1{{font-size:1.3rem;margin:0 0 .5rem}}
.state{{display:inline-block;padding:.2rem .6rem;border-radius:1rem;color:#fff;background:{colour}}}
section{{background:#fff;border-radius:.5rem;padding:.6rem 1rem;margin:.8rem 0;box-shadow:0 1px 2px #0002}}
h2{{font-size:1rem;margin:.2rem 0 .4rem}}
table{{border-collapse:collapse;width:100%}}
th{{text-align:left;font-weight:600;padding:.2rem .6rem .2rem 0;width:45%;vertical-align:top}}
td{{padding:.2rem 0;word-break:break-all}}
</style></head><body>
<h1>Wattsmart gateway <span class="state" id="state">{state}</span></h1>
{sections}
</body></html>
"""

_COLOURS = {"ok": "#1a7f37", "degraded": "#b35900", "fault": "#c62828"}


def render_html(status: Mapping[str, Any]) -> str:
    """Render the status mapping: top-level `state`, then one section per nested mapping."""
    state = str(status.get("state", "unknown"))
    parts = []
    for title, value in status.items():
        if not isinstance(value, Mapping):
            continue
        rows = "".join(
            f'<tr><th>{html.escape(str(k))}</th><td id="{html.escape(f"{title}.{k}")}">'
            f"{html.escape(_show(v))}</td></tr>"
            for k, v in value.items()
        )
        parts.append(f"<section><h2>{html.escape(title)}</h2><table>{rows}</table></section>")
    return _PAGE.format(
        colour=_COLOURS.get(state, "#555"), state=html.escape(state), sections="\n".join(parts)
    )


def _show(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | tuple):
        return "; ".join(_show(v) for v in value) or "—"
    return str(value)


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


def make_app(snapshot: Snapshot, refused: Callable[[str], None] | None = None) -> web.Application:
    """The aiohttp application serving the page and the JSON."""

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
        return web.Response(text=render_html(snapshot()), content_type="text/html")

    async def api(_: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(snapshot(), default=str, indent=1), content_type="application/json"
        )

    app = web.Application(middlewares=[check_host], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(no_banner)
    app.router.add_get("/", page)
    app.router.add_get("/api/status", api)
    return app


class StatusPage:
    """The page's HTTP listener as an async context manager; `serve_on` moves it to another address."""

    def __init__(
        self, snapshot: Snapshot, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self._bad_host = _Throttled("requests with a foreign Host refused")
        self._over_limit = _Throttled(f"connections over the limit of {max_connections} reset")
        self._handler_args: dict[str, Any] = {
            "access_log": None,
            "keepalive_timeout": IDLE_TIMEOUT_S,
            "logger": _HTTP_LOGGER,
            **_HEADER_LIMITS,
        }
        self._runner = web.AppRunner(make_app(snapshot, self._bad_host), **self._handler_args)
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
