"""The status page holds its limits: connections, timeouts, header sizes, Host check, no version banner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from app.commissioning import status_page, web
from app.commissioning.status_page import StatusPage
from app.commissioning.web import host_allowed


@contextlib.asynccontextmanager
async def page(max_connections: int = 4) -> AsyncIterator[StatusPage]:
    async with StatusPage(lambda: {"state": "ok"}, "127.0.0.1", 0, max_connections=max_connections) as p:
        yield p


async def raw(p: StatusPage, request: bytes) -> bytes:
    """Send `request` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


def get(host: str, path: str = "/api/status") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


async def test_no_software_version_is_advertised() -> None:
    async with page() as p:
        for request in (get(f"127.0.0.1:{p.port}"), get("127.0.0.1", "/nothing"), b"BREW / HTCPCP/9\r\n\r\n"):
            answer = await raw(p, request)
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith((b"http/1.1 ", b"http/1.0 ")), answer
            assert b"aiohttp" not in answer.lower() and b"python" not in answer.lower(), answer


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("192.168.1.23", True),
        ("[fe80::1]:8080", True),
        ("localhost:8080", True),
        ("attacker.example:8080", False),
        ("wattsmart.rebind.example", False),
        ("", False),
    ],
)
def test_only_ip_addresses_and_localhost_are_accepted_as_host(host: str, allowed: bool) -> None:
    assert host_allowed(host) is allowed


async def test_a_foreign_host_is_refused_dns_rebinding() -> None:
    async with page() as p:
        assert (await raw(p, get(f"127.0.0.1:{p.port}"))).startswith(b"HTTP/1.1 200")
        answer = await raw(p, get("evil.example"))
        assert answer.startswith(b"HTTP/1.1 421") and b'"state"' not in answer


async def test_oversized_headers_are_refused() -> None:
    async with page() as p:
        big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fill: " + b"a" * 5000 + b"\r\n\r\n"
        answer = await raw(p, big)
        assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:60]


async def test_connections_over_the_limit_are_reset_and_silent_ones_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(status_page, "REQUEST_TIMEOUT_S", 0.5)
    async with page(max_connections=4) as p:
        idle = [await asyncio.open_connection("127.0.0.1", p.port) for _ in range(4)]
        await asyncio.sleep(0.1)
        assert p.connections == 4
        # the fifth is reset at once: no request is answered, no descriptor is kept for it
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        with contextlib.suppress(ConnectionResetError):
            writer.write(get("127.0.0.1"))
            assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        assert p.refused >= 1
        # the silent four are closed once the request timeout passes; the page answers again
        for r, _ in idle:
            assert await asyncio.wait_for(r.read(), 2) == b""
        for _, w in idle:
            w.close()
        assert (await raw(p, get(f"127.0.0.1:{p.port}"))).startswith(b"HTTP/1.1 200")


async def test_a_storm_of_bad_requests_writes_one_log_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fresh once-a-minute filter: the other tests here may have used this minute's line
    monkeypatch.setattr(web.HTTP_LOGGER, "filters", [web.OneLinePerMinute()])
    caplog.set_level("DEBUG", logger="app.commissioning.status_page")
    async with page(max_connections=64) as p:
        for n in range(30):
            await raw(p, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 3000 + b"\r\n\r\n")
            await raw(p, get(f"rebind{n}.example"))
    lines = [r for r in caplog.records if r.name.startswith("app.commissioning.status_page")]
    assert [r.exc_info for r in lines] == [None] * len(lines)  # no tracebacks
    assert len([r for r in lines if "Error handling request" in r.getMessage()]) == 1
    assert len([r for r in lines if "foreign Host" in r.getMessage()]) == 1
