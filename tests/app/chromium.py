"""Debian's headless Chromium driven over the DevTools protocol (a WebSocket, via aiohttp): load a page at a
given size, collect console errors and failed loads, read the DOM, evaluate, take a screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str:
    """The chromium binary, or the test fails saying how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed (apt-get install chromium); make test-browser needs it")
    return path


class Tab:
    """One page target: send commands, gather the console's errors."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, asyncio.Event] = {}
        self.errors: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._waiting.pop(data["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
                continue
            method, params = data.get("method", ""), data.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                self.errors.append(
                    "console: " + " ".join(str(a.get("value")) for a in params.get("args", []))
                )
            elif method == "Runtime.exceptionThrown":
                self.errors.append("exception: " + str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
            if method in self._events:
                self._events[method].set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (an error reply fails the test)."""
        ident = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = fut
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, 30)
        assert "error" not in reply, reply
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def load(self, url: str, width: int, height: int, *, scripts: bool = True) -> None:
        """Open `url` in a `width`×`height` viewport and wait for its load event."""
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        await self.send("Emulation.setScriptExecutionDisabled", value=not scripts)
        loaded = self._events["Page.loadEventFired"] = asyncio.Event()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded.wait(), 30)

    async def html(self) -> str:
        """The document's HTML as parsed (no script involved)."""
        root = await self.send("DOM.getDocument", depth=0)
        outer = await self.send("DOM.getOuterHTML", nodeId=root["root"]["nodeId"])
        return str(outer["outerHTML"])

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of `expression` in the page."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> bytes:
        """Save the viewport as a PNG at `path` and return its bytes."""
        shot = await self.send("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, png)
        return png

    async def close(self) -> None:
        """Stop reading."""
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Tab]:
    """A headless Chromium (own profile, ephemeral DevTools port on 127.0.0.1) and its first tab."""
    proc = await asyncio.create_subprocess_exec(
        chromium_path(),
        *_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode(errors="replace")
            assert line, "chromium exited before it opened its DevTools port"
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = int(found.group(1)) if found else None
        drain = asyncio.create_task(proc.stderr.read())
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as reply:
                targets = await reply.json()
            page = next(t for t in targets if t.get("type") == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tab = Tab(ws)
                try:
                    yield tab
                finally:
                    await tab.close()
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
