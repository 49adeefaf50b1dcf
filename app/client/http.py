"""HTTP for 2030.5: one aiohttp session, sep+xml only, bounded bodies and times, errors mapped.

Every request sends `Accept: application/sep+xml`; the Wattsmart profile forbids EXI, so any
other response content type is refused. Bodies are read in chunks and abandoned past
max_body_bytes; each request, body included, must finish within request_timeout_s.
GETs are conditional when the server gave an ETag or Last-Modified, so an unchanged resource
costs a 304 and no parsing.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

import aiohttp
from yarl import URL

from app.client import errors
from app.client.backoff import parse_retry_after
from app.client.tls import client_context, explain_handshake_failure
from app.config import ServerConfig
from app.sep import SepParseError, parse, to_xml
from app.sep.error import Error, ReasonCode

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

SEP_XML = "application/sep+xml"
_CHUNK = 16_384
#: conditional-GET validators kept for this many URLs (a gateway polls a few dozen)
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Reply:
    """A checked HTTP answer: status, the (capped) body, and the headers we use."""

    status: int
    body: bytes
    location: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """A GET result; `changed` is False when the server answered 304 and `value` is our copy."""

    value: T
    changed: bool


@dataclass(slots=True)
class _Validators:
    etag: str | None
    last_modified: str | None
    value: object


class HttpClient:
    """The process's one HTTP session with the 2030.5 server; use as `async with HttpClient(...)`."""

    def __init__(self, server: ServerConfig, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = server
        self._ssl = ssl_context
        self._base = URL(server.dcap_url).origin()
        self._session: aiohttp.ClientSession | None = None
        self._validators: OrderedDict[str, _Validators] = OrderedDict()
        #: requests sent, for the benchmark and the status page
        self.requests = 0

    @property
    def base_url(self) -> URL:
        """scheme://host:port of the server; hrefs are resolved against it."""
        return self._base

    async def __aenter__(self) -> Self:
        ctx = self._ssl if self._ssl is not None else client_context(self._server)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=4),
            timeout=aiohttp.ClientTimeout(total=self._server.request_timeout_s),
            headers={"Accept": SEP_XML},
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def url(self, href: str, params: Mapping[str, str | int] | None = None) -> URL:
        """Resolve `href` against the server; links to another origin are refused."""
        url = self._base.join(URL(href))
        if url.origin() != self._base:
            # our client certificate is for this server only
            raise errors.BadResponse(f"link {href!r} points away from {self._base}", href=href)
        if params:
            url = url.update_query({k: str(v) for k, v in params.items()})
        return url

    # --- typed operations -------------------------------------------------------------------

    async def get(self, href: str, cls: type[T], params: Mapping[str, str | int] | None = None) -> T:
        """GET `href` as a `cls` resource (conditional when possible)."""
        return (await self.fetch(href, cls, params)).value

    async def fetch(
        self, href: str, cls: type[T], params: Mapping[str, str | int] | None = None
    ) -> Fetched[T]:
        """GET `href` as `cls`; a 304 returns our previous copy with changed=False."""
        url = self.url(href, params)
        key = str(url)
        cached = self._validators.get(key)
        headers: dict[str, str] = {}
        if cached is not None and isinstance(cached.value, cls):
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        reply = await self._request("GET", url, href, headers=headers)
        if reply.status == 304 and cached is not None and isinstance(cached.value, cls):
            self._validators.move_to_end(key)
            return Fetched(cached.value, changed=False)
        if reply.status != 200:
            raise errors.BadResponse(f"GET {href}: unexpected status {reply.status}", href=href)
        value = self._parse(cls, reply.body, href)
        if reply.etag or reply.last_modified:
            self._validators[key] = _Validators(reply.etag, reply.last_modified, value)
            self._validators.move_to_end(key)
            while len(self._validators) > _CACHE_SIZE:
                self._validators.popitem(last=False)
        else:
            self._validators.pop(key, None)
        return Fetched(value, changed=True)

    async def post(self, href: str, obj: object) -> str | None:
        """POST `obj`; returns the Location header (the created resource's href), if any."""
        reply = await self._request("POST", self.url(href), href, body=to_xml(obj))
        return reply.location

    async def put(self, href: str, obj: object) -> None:
        """PUT `obj` at `href`."""
        await self._request("PUT", self.url(href), href, body=to_xml(obj))

    async def delete(self, href: str) -> None:
        """DELETE `href`."""
        await self._request("DELETE", self.url(href), href)

    def forget(self, href: str) -> None:
        """Drop conditional-GET state for `href` (every query variant)."""
        prefix = str(self.url(href))
        for key in [k for k in self._validators if k == prefix or k.startswith(prefix + "?")]:
            del self._validators[key]

    # --- the one request path -----------------------------------------------------------------

    def _parse(self, cls: type[T], body: bytes, href: str) -> T:
        try:
            return parse(cls, body, max_bytes=self._server.max_body_bytes)
        except SepParseError as exc:
            raise errors.MalformedBody(f"GET {href}: {exc}", href=href) from None

    async def _request(
        self,
        method: str,
        url: URL,
        href: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        session = self._session
        if session is None:
            raise RuntimeError("HttpClient used outside `async with`")
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = SEP_XML
        self.requests += 1
        _LOGGER.debug("%s %s", method, url)
        try:
            async with asyncio.timeout(self._server.request_timeout_s):
                async with session.request(
                    method, url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    reply = await self._read(resp, method, href)
        except TimeoutError:
            raise errors.RequestTimeout(
                f"{method} {href}: no complete answer within {self._server.request_timeout_s:g} s",
                href=href,
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise errors.TlsHandshakeError(
                f"{method} {href}: the server's certificate is not trusted: "
                f"{exc.certificate_error} (ca_file {self._server.ca_file}"
                f"{'' if not self._server.tls.check_hostname else '; tls.check_hostname is on'})",
                href=href,
            ) from None
        except aiohttp.ClientConnectorSSLError as exc:
            raise errors.TlsHandshakeError(
                f"{method} {href}: {explain_handshake_failure(self._server, exc.os_error)}", href=href
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if url.scheme == "https" and isinstance(exc.os_error, ConnectionResetError):
                # the TCP connect worked and the peer hung up during the handshake
                raise errors.TlsHandshakeError(
                    f"{method} {href}: {explain_handshake_failure(self._server, None)}", href=href
                ) from None
            raise errors.ConnectionFailed(
                f"{method} {href}: cannot connect to {self._base} ({exc.os_error.strerror or exc.os_error})",
                href=href,
                no_network=no_network(exc.os_error),
            ) from None
        except aiohttp.ClientResponseError as exc:
            raise errors.BadResponse(f"{method} {href}: {exc.message}", href=href) from None
        except aiohttp.ServerDisconnectedError:
            # with TLS 1.3 a refused client certificate shows up only as this hang-up
            raise errors.ConnectionFailed(
                f"{method} {href}: the server hung up without answering (if this persists: "
                f"{explain_handshake_failure(self._server, None)})",
                href=href,
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise errors.BadResponse(f"{method} {href}: broken body ({exc})", href=href) from None
        except aiohttp.ClientError as exc:
            raise errors.ConnectionFailed(
                f"{method} {href}: connection failed ({exc or type(exc).__name__})", href=href
            ) from None
        except ssl.SSLError as exc:
            raise errors.TlsHandshakeError(
                f"{method} {href}: {explain_handshake_failure(self._server, exc)}", href=href
            ) from None
        return reply

    async def _read(self, resp: aiohttp.ClientResponse, method: str, href: str) -> Reply:
        cap = self._server.max_body_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise errors.BodyTooLarge(
                f"{method} {href}: body of {resp.content_length} bytes is over the {cap}-byte cap",
                href=href,
                status=resp.status,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise errors.BodyTooLarge(
                    f"{method} {href}: body went over the {cap}-byte cap; abandoned",
                    href=href,
                    status=resp.status,
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        status = resp.status
        if status >= 300:
            self._raise_for_status(resp, body, method, href)
        if body and resp.content_type != SEP_XML:
            # the Wattsmart profile: application/sep+xml only, EXI is not permitted
            raise errors.WrongContentType(
                f"{method} {href}: content type {resp.content_type!r}, expected {SEP_XML}",
                href=href,
                status=status,
            )
        return Reply(
            status=status,
            body=body,
            location=resp.headers.get("Location"),
            etag=resp.headers.get("ETag"),
            last_modified=resp.headers.get("Last-Modified"),
        )

    def _raise_for_status(self, resp: aiohttp.ClientResponse, body: bytes, method: str, href: str) -> None:
        status = resp.status
        if status == 304:
            return
        error = self._error_body(resp, body)
        detail = f"{method} {href}: HTTP {status} {resp.reason or ''}".rstrip()
        if error is not None:
            detail += f" ({describe_error(error)})"
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if retry_after is None and error is not None and error.maxRetryDuration is not None:
            retry_after = float(error.maxRetryDuration)
        if status in (404, 410) or 300 <= status < 400:
            raise errors.Rediscover(detail, href=href, status=status)
        if status in (401, 403):
            raise errors.NotAuthorized(
                detail + ": the server does not accept our certificate here (is the device registered?)",
                href=href,
                status=status,
            )
        if status == 429 or status >= 500:
            raise errors.ServerBusy(detail, href=href, status=status, retry_after=retry_after)
        if error is not None and error.reasonCode == ReasonCode.MAXIMUM_REQUEST_FREQUENCY_EXCEEDED:
            raise errors.ServerBusy(detail, href=href, status=status, retry_after=retry_after)
        raise errors.Rejected(
            detail, href=href, status=status, reason_code=error.reasonCode if error is not None else None
        )

    def _error_body(self, resp: aiohttp.ClientResponse, body: bytes) -> Error | None:
        if not body or resp.content_type != SEP_XML:
            return None
        try:
            return parse(Error, body, max_bytes=self._server.max_body_bytes)
        except SepParseError:
            return None


#: at most this much of a server's Error message text goes into a log line or the status page
MESSAGE_SHOWN: Final = 200


#: connect errors that mean this box has no network at all (not that the server is down)
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})


def no_network(error: OSError) -> bool:
    """Whether a connect error says this box has no route or cannot resolve names at all."""
    if isinstance(error, socket.gaierror):
        return error.errno == socket.EAI_AGAIN  # "Temporary failure in name resolution"
    return error.errno in _NO_ROUTE


def describe_error(error: Error) -> str:
    """A 2030.5 Error as one line: reasonCode (with its name), maxRetryDuration, the server's text."""
    try:
        reason = f"{error.reasonCode} {ReasonCode(error.reasonCode).name.lower().replace('_', ' ')}"
    except ValueError:
        reason = str(error.reasonCode)
    text = f"2030.5 Error reasonCode {reason}"
    if error.maxRetryDuration is not None:
        text += f", maxRetryDuration {error.maxRetryDuration} s"
    if error.message:
        shown = "".join(c if c.isprintable() else " " for c in error.message).strip()
        if len(shown) > MESSAGE_SHOWN:
            shown = shown[:MESSAGE_SHOWN] + "…"
        text += f": {shown!r}"
    return text
