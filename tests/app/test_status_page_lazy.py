"""The status page's application is loaded by its first connection; what comes meanwhile is answered."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from app.commissioning import status_page, web
from app.commissioning.status_page import StatusPage
from tests.app.test_status_page_limits import raw


def _get(path: str = "/api/status", close: bool = True) -> bytes:
    tail = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{tail}\r\n".encode()


def test_opening_the_page_does_not_load_the_web_stack() -> None:
    code = (
        "import asyncio, json, sys\n"
        "from app.commissioning.status_page import StatusPage\n"
        "async def main():\n"
        "    async with StatusPage(lambda: {}, '127.0.0.1', 0) as p:\n"
        "        before = 'aiohttp.web' in sys.modules\n"
        "        r, w = await asyncio.open_connection('127.0.0.1', p.port)\n"
        "        w.write(b'GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n')\n"
        "        answer = await r.read()\n"
        "        w.close()\n"
        "        print(json.dumps([before, 'aiohttp.web' in sys.modules, answer.split(b' ')[1].decode()]))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(out.stdout) == [False, True, "200"]


@pytest.fixture
def slow_load(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The application's set-up waits for the returned event: connections pile up meanwhile."""
    gate = asyncio.Event()
    real = web.make_runner

    class Gated:
        def __init__(self, *args: Any) -> None:
            self.runner = real(*args)

        async def setup(self) -> None:
            await gate.wait()
            await self.runner.setup()

        @property
        def server(self) -> Any:
            return self.runner.server

        async def cleanup(self) -> None:
            await self.runner.cleanup()

    def gated(*args: Any) -> Any:
        return Gated(*args)

    monkeypatch.setattr(web, "make_runner", gated)
    return gate


async def test_connections_that_come_while_it_loads_are_all_answered(slow_load: asyncio.Event) -> None:
    async with StatusPage(lambda: {"state": "ok"}, "127.0.0.1", 0) as page:
        exchanges = [
            asyncio.create_task(raw(page, request))
            for request in (
                _get(),
                _get("/nothing"),
                _get("/api/history?hours=1"),
                _get("/api/status", close=False) + _get("/"),  # two pipelined
                b"BREW / HTCPCP/9\r\n\r\n",
            )
        ]
        await asyncio.sleep(0.2)  # every request has arrived and waits in the listener
        assert not page.loaded and page.connections == 5
        slow_load.set()
        answers = await asyncio.gather(*exchanges)
        assert page.loaded
        assert answers[0].startswith(b"HTTP/1.1 200") and b'"state": "ok"' in answers[0]
        assert answers[1].startswith(b"HTTP/1.1 404")
        assert answers[2].startswith(b"HTTP/1.1 200") and b"application/json" in answers[2]
        assert answers[3].count(b"HTTP/1.1 200") == 2 and b"<html" in answers[3].lower()
        assert answers[4].startswith((b"HTTP/1.1 400", b"HTTP/1.0 400"))
        await asyncio.sleep(0.05)
        assert page.connections == 0


async def test_while_it_loads_the_limits_hold(
    slow_load: asyncio.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status_page, "WAITING_BYTES", 4096)
    async with StatusPage(lambda: {"state": "ok"}, "127.0.0.1", 0, max_connections=3) as page:
        flood = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 8192
        over = [asyncio.create_task(raw(page, flood))]
        await asyncio.sleep(0.2)
        assert page.connections == 0  # more than WAITING_BYTES before a handler: reset
        held = [asyncio.create_task(raw(page, _get())) for _ in range(3)]
        await asyncio.sleep(0.2)
        extra = [asyncio.create_task(raw(page, _get())) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert page.connections == 3 and page.refused == 2
        slow_load.set()
        answers = await asyncio.gather(*held)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
        for task in over + extra:  # reset, or closed, without an answer
            (result,) = await asyncio.gather(task, return_exceptions=True)
            assert result == b"" or isinstance(result, ConnectionResetError)


async def test_a_connection_that_leaves_while_it_loads_costs_nothing() -> None:
    async with StatusPage(lambda: {"state": "ok"}, "127.0.0.1", 0) as page:
        _, writer = await asyncio.open_connection("127.0.0.1", page.port)
        writer.close()  # gone before (or while) the application loads
        await writer.wait_closed()
        assert (await raw(page, _get())).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.05)
        assert page.connections == 0


async def test_an_application_that_cannot_load_is_one_line_and_the_next_visit_tries_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = web.make_runner

    def broken(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(web, "make_runner", broken)
    async with StatusPage(lambda: {"state": "ok"}, "127.0.0.1", 0) as page:
        try:
            answer = await raw(page, _get())
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # reset: no half-made answer
        assert not page.loaded and page.connections == 0
        lines = [r.getMessage() for r in caplog.records if "cannot load" in r.getMessage()]
        assert len(lines) == 1 and "No space left" in lines[0] and not caplog.records[-1].exc_info
        monkeypatch.setattr(web, "make_runner", real)
        assert (await raw(page, _get())).startswith(b"HTTP/1.1 200")
        assert page.loaded
