"""The status page's HTTP application (aiohttp.web): the page, its JSON, its history, its answers.

Loaded by `status_page.StatusPage` when the first connection arrives, not at start-up: aiohttp.web
and what it brings are ~2 MB resident, and most days nobody opens the page. Nothing here listens;
the listener, its connection limit and its timeouts stay in `status_page`.
"""

from __future__ import annotations

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

#: the only requests are GETs: no body worth having, small headers
MAX_BODY_BYTES: Final = 1024
HEADER_LIMITS: Final = {"max_line_size": 2048, "max_field_size": 2048, "max_headers": 32}
SERVER_HEADER: Final = "wattsmart-gateway"
#: bad requests are logged at most this often (with a count)
LOG_EVERY_S: Final = 60.0

Snapshot = Callable[[], Mapping[str, Any]]


class OneLinePerMinute(logging.Filter):
    """aiohttp logs a traceback per malformed request: keep one line a minute, without the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._passed_at = -LOG_EVERY_S
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._passed_at < LOG_EVERY_S:
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
HTTP_LOGGER: Final = logging.getLogger("app.commissioning.status_page.http")
HTTP_LOGGER.addFilter(OneLinePerMinute())


class Handler(RequestHandler):
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


def make_app(
    snapshot: Snapshot,
    history: History | None = None,
    zone: tzinfo = UTC,
    wall_clock: Callable[[], float] = time.time,
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
        now = wall_clock()
        text = render_page(snapshot(), charts.html(now), now, zone)
        return web.Response(text=text, content_type="text/html")

    async def history_api(request: web.Request) -> web.Response:
        try:
            hours = float(request.query.get("hours", "24"))
        except ValueError:
            hours = float("nan")
        if not 0 < hours <= HISTORY_S / 3600:
            raise web.HTTPBadRequest(text=f"hours must be a number above 0 and at most {HISTORY_S // 3600}\n")
        return web.Response(text=history.to_json_text(wall_clock(), hours), content_type="application/json")

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


def make_runner(
    snapshot: Snapshot,
    history: History | None,
    zone: tzinfo,
    refused: Callable[[str], None],
    keepalive_s: float,
) -> web.AppRunner:
    """The application's runner (`setup()` it before handing it connections)."""
    return web.AppRunner(make_app(snapshot, history, zone, refused=refused), **handler_args(keepalive_s))


def handler_args(keepalive_s: float) -> dict[str, Any]:
    """What every request handler of the page is made with: no access log, small headers."""
    return {"access_log": None, "keepalive_timeout": keepalive_s, "logger": HTTP_LOGGER, **HEADER_LIMITS}


def close_if_silent(handler: RequestHandler) -> None:
    """Close a connection that has not completed a request yet (idle or slow-header floods)."""
    if getattr(handler, "_request_count", 1) == 0:  # aiohttp counts a request once its headers are in
        handler.force_close()
