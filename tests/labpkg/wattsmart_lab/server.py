"""The in-process 2030.5 lab server: aiohttp over real mutual TLS on 127.0.0.1.

It identifies each client by the LFDI of its certificate, serves the scriptable tree of
wattsmart_lab.tree, records every request, and lets a test (or the demo) inject failures and take the
server down and up. Use as `async with LabServer(pki) as server:`; `server.tree` is the knob
board, `server.requests` the log, `server.client_config(...)` a ServerConfig pointed at it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

from aiohttp import web

from app.client.identity import lfdi_from_der
from app.client.tls import ccm8_cipher_string
from app.config import ServerConfig, TlsOptions
from app.sep import to_xml
from app.sep.error import Error
from hal.clock import utc_now
from wattsmart_lab.pki import CertFiles, Pki
from wattsmart_lab.tree import LabTree

_LOGGER = logging.getLogger(__name__)

SEP_XML = "application/sep+xml"
FaultKind = Literal["status", "content_type", "body", "slow", "huge"]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    at: datetime
    lfdi: str | None
    status: int = 0
    #: the negotiated TLS cipher suite (OpenSSL name)
    cipher: str | None = None


@dataclass(slots=True)
class Fault:
    """A scripted misbehaviour for the next `count` matching requests."""

    kind: FaultKind
    count: int
    path: str | None = None
    status: int = 503
    retry_after: str | None = None
    content_type: str = SEP_XML
    body: bytes = b""
    delay_s: float = 0.0
    size: int = 0

    def matches(self, path: str) -> bool:
        """True if this fault applies to a request for `path`."""
        return self.count > 0 and (self.path is None or path == self.path or path.startswith(self.path + "/"))


def server_context(pki: Pki, *, ccm8_only: bool = False, tls13: bool = False) -> ssl.SSLContext:
    """A TLS server context requiring client certificates issued by the lab CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # 2030.5-2018 §6.11 mandates TLS 1.2; 1.3 only on request
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server.cert, pki.server.key)
    ctx.load_verify_locations(cafile=str(pki.ca.cert))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ccm8_only:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ccm8_cipher_string())
    else:
        ctx.set_ciphers(ccm8_cipher_string("ECDHE+AESGCM:ECDHE+CHACHA20"))
    return ctx


@dataclass
class LabServer:
    """A scriptable 2030.5 server for tests and the demo."""

    pki: Pki
    host: str = "127.0.0.1"
    port: int = 0
    #: client certificate names (from `pki.clients`) registered as EndDevices at start
    register: tuple[str, ...] = ("client",)
    decoys: int = 3
    ccm8_only: bool = False
    tls13: bool = False
    #: answer conditional GETs with 304 when the ETag still matches
    etags: bool = True
    clock: Callable[[], datetime] = utc_now
    tree: LabTree = field(init=False)
    requests: list[Recorded] = field(init=False, default_factory=list)
    faults: list[Fault] = field(init=False, default_factory=list)
    _runner: web.AppRunner | None = field(init=False, default=None)
    _site: web.TCPSite | None = field(init=False, default=None)
    _ssl: ssl.SSLContext | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.tree = LabTree(self.clock, decoys=self.decoys)
        for name in self.register:
            self.tree.register(self.lfdi_of(self.pki.client(name)))
        # two function set assignments, three programs: primacy decides, not list order
        self.tree.add_program(primacy=2, description="Wattsmart non-contractual", fsa=0)
        self.tree.add_program(primacy=1, description="Wattsmart contracted", fsa=0)
        self.tree.add_program(primacy=0, description="Site EMS", fsa=1)

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one, kept across down()/up())."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        self._ssl = server_context(self.pki, ccm8_only=self.ccm8_only, tls13=self.tls13)
        await self.up()

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._runner is not None:
            runner, self._runner, self._site = self._runner, None, None
            await runner.cleanup()

    async def down(self) -> None:
        """Take the server off the network: refuse new connections, drop open ones."""
        if self._site is None or self._runner is None:
            return
        site, self._site = self._site, None
        await site.stop()
        server = self._runner.server
        if server is not None:
            for conn in list(server.connections):
                conn.force_close()
                if conn.transport is not None:
                    conn.transport.abort()
        _LOGGER.info("lab server down")

    async def up(self) -> None:
        """Listen again on the same port."""
        if self._site is not None or self._runner is None:
            return
        self._site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl)
        await self._site.start()
        if self.port == 0:
            self.port = self._runner.addresses[-1][1]
        _LOGGER.info("lab server listening on %s", self.base_url)

    @property
    def base_url(self) -> str:
        """https://host:port"""
        return f"https://{self.host}:{self.port}"

    @property
    def dcap_url(self) -> str:
        """The DeviceCapability URL a client starts from."""
        return f"{self.base_url}{self.tree.href('/dcap')}"

    def client_config(self, name: str = "client", **overrides: object) -> ServerConfig:
        """A ServerConfig for client certificate `name` pointed at this server."""
        certs = self.pki.client(name)
        values: dict[str, object] = {
            "dcap_url": self.dcap_url,
            "ca_file": self.pki.ca.cert,
            "cert_file": certs.cert,
            "key_file": certs.key,
            "tls": TlsOptions(),
        }
        values.update(overrides)
        return ServerConfig(**values)  # type: ignore[arg-type]

    @staticmethod
    def lfdi_of(certs: CertFiles) -> str:
        """The LFDI of a certificate on disk."""
        return lfdi_from_der(certs.der())

    # --- scripting: failures -------------------------------------------------------------------

    def fail(
        self,
        count: int = 1,
        status: int = 503,
        *,
        retry_after: str | None = None,
        path: str | None = None,
        error: Error | None = None,
    ) -> None:
        """Answer the next `count` requests (for `path`, if given) with HTTP `status` and `error`."""
        body = to_xml(error) if error is not None else b""
        self.faults.append(Fault("status", count, path, status=status, retry_after=retry_after, body=body))

    def wrong_content_type(
        self, count: int = 1, content_type: str = "application/sep-exi", path: str | None = None
    ) -> None:
        """Serve the next `count` answers with the real body but another content type."""
        self.faults.append(Fault("content_type", count, path, content_type=content_type))

    def garbage(self, count: int = 1, body: bytes = b"<not-xml", path: str | None = None) -> None:
        """Serve the next `count` answers as `body` (labelled application/sep+xml)."""
        self.faults.append(Fault("body", count, path, body=body))

    def huge(self, count: int = 1, size: int = 8 << 20, path: str | None = None) -> None:
        """Stream `size` bytes of whitespace-padded XML in the next `count` answers."""
        self.faults.append(Fault("huge", count, path, size=size))

    def slow(self, count: int = 1, delay_s: float = 5.0, path: str | None = None) -> None:
        """Wait `delay_s` before answering the next `count` requests."""
        self.faults.append(Fault("slow", count, path, delay_s=delay_s))

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self.faults.clear()

    # --- the request log -----------------------------------------------------------------------

    def count(self, method: str = "GET", path: str | None = None, *, prefix: bool = False) -> int:
        """How many recorded requests had `method` and `path` (or started with it, with prefix)."""
        return sum(
            1
            for r in self.requests
            if r.method == method and (path is None or r.path == path or (prefix and r.path.startswith(path)))
        )

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.requests.clear()

    # --- HTTP ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        query = dict(request.query)
        lfdi = self._peer_lfdi(request)
        at = self.tree.now()
        fault = next((f for f in self.faults if f.matches(request.path)), None)
        if fault is not None:
            fault.count -= 1
            self.faults = [f for f in self.faults if f.count > 0]
        response = await self._respond(request, body, query, lfdi, fault)
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        cipher = ssl_object.cipher()[0] if ssl_object is not None else None
        self.requests.append(
            Recorded(request.method, request.path, query, body, at, lfdi, response.status, cipher)
        )
        return response

    async def _respond(
        self,
        request: web.Request,
        body: bytes,
        query: dict[str, str],
        lfdi: str | None,
        fault: Fault | None,
    ) -> web.StreamResponse:
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            error = fault.body or (to_xml(Error(reasonCode=2)) if fault.status >= 500 else b"")
            return web.Response(status=fault.status, body=error, headers=headers, content_type=SEP_XML)
        if fault is not None and fault.kind == "huge":
            return await self._stream_huge(request, fault.size)
        response = self._dispatch(request, body, query, lfdi)
        if fault is not None and fault.kind == "content_type" and response.body:
            response.content_type = fault.content_type
        elif fault is not None and fault.kind == "body":
            response = web.Response(status=200, body=fault.body, content_type=SEP_XML)
        return response

    async def _stream_huge(self, request: web.Request, size: int) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_type = SEP_XML
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            await response.write(b'<DeviceCapability xmlns="urn:ieee:std:2030.5:ns">')
            for _ in range(size // len(chunk)):
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client gave up, as it should
        return response

    def _dispatch(
        self, request: web.Request, body: bytes, query: dict[str, str], lfdi: str | None
    ) -> web.Response:
        path = self.tree.canonical(request.path)
        if path is None:
            return web.Response(status=404)
        if request.method == "GET":
            obj = self.tree.get(path, query, lfdi)
            if obj is None:
                return web.Response(status=404)
            xml = to_xml(obj)
            etag = '"' + hashlib.sha256(xml).hexdigest()[:16] + '"'
            if self.etags and request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            headers = {"ETag": etag} if self.etags else {}
            return web.Response(body=xml, content_type=SEP_XML, headers=headers)
        if request.method in ("PUT", "POST"):
            if request.content_type != SEP_XML:
                return web.Response(status=415)
            reply = self.tree.put(path, body) if request.method == "PUT" else self.tree.post(path, body, lfdi)
            headers = {"Location": reply.location} if reply.location else {}
            return web.Response(status=reply.status, headers=headers)
        return web.Response(status=405)

    @staticmethod
    def _peer_lfdi(request: web.Request) -> str | None:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return lfdi_from_der(der) if der else None
