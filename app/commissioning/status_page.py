"""The installer's status page: read-only, no secrets, works on a phone; the same data as JSON.

`GET /` is a small self-refreshing HTML page; `GET /api/status` is the JSON it is rendered from.
The page is built from one `snapshot()` callable so it can never show something the JSON does not.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

_LOGGER = logging.getLogger(__name__)

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


def make_app(snapshot: Snapshot) -> web.Application:
    """The aiohttp application serving the page and the JSON."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=render_html(snapshot()), content_type="text/html")

    async def api(_: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(snapshot(), default=str, indent=1), content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/api/status", api)
    return app


class StatusPage:
    """The page's HTTP listener as an async context manager; `serve_on` moves it to another address."""

    def __init__(self, snapshot: Snapshot, host: str, port: int) -> None:
        self._runner = web.AppRunner(make_app(snapshot), access_log=None)
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
