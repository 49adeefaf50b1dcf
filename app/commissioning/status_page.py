"""The installer's status page: read-only, no secrets, works on a phone; the same data as JSON.

`GET /` is a self-refreshing HTML page (app.commissioning.page); `GET /api/status` is the JSON it is
rendered from; `GET /api/history?hours=24` is the last day of the in-memory history ring. The page is
built from one `snapshot()` callable and the ring so it can never show something the JSON does not.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, tzinfo
from typing import Any

from aiohttp import web

from app.commissioning.history import HISTORY_S, History
from app.commissioning.page import ChartCache, render_page

_LOGGER = logging.getLogger(__name__)

Snapshot = Callable[[], Mapping[str, Any]]


def make_app(
    snapshot: Snapshot,
    history: History | None = None,
    zone: tzinfo = UTC,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The aiohttp application serving the page, the JSON and the history (times shown in `zone`)."""
    history = history if history is not None else History()
    charts = ChartCache(history, zone)

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

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/api/status", api)
    app.router.add_get("/api/history", history_api)
    return app


class StatusPage:
    """The page's HTTP listener as an async context manager; `serve_on` moves it to another address."""

    def __init__(
        self, snapshot: Snapshot, host: str, port: int, *, history: History | None = None, zone: tzinfo = UTC
    ) -> None:
        self._runner = web.AppRunner(make_app(snapshot, history, zone), access_log=None)
        self.host, self.port = host, port
        self._site: web.TCPSite | None = None
        self.url = ""

    async def __aenter__(self) -> StatusPage:
        await self._runner.setup()
        try:
            await self.serve_on(self.host)
        except BaseException:
            await self._runner.cleanup()
            raise
        return self

    async def serve_on(self, host: str) -> None:
        """Listen on `host` (same port) instead of the current address."""
        if self._site is not None:
            await self._site.stop()
        site = web.TCPSite(self._runner, host, self.port)
        await site.start()
        self._site = site
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]  # port 0 picked one: keep it for a move
        self.host = host
        self.url = f"http://{host}:{self.port}/"
        _LOGGER.info("status page on %s", self.url)

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
