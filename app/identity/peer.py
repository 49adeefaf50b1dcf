"""The 2030.5 server's certificate, read from a TLS handshake alone (no HTTP), for the expiry watch."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

from yarl import URL

from app.client.tls import client_context
from app.config import ServerConfig
from app.identity.store import IdentityStore

ServerCertFetch = Callable[[], Awaitable[bytes | None]]


async def server_certificate(server: ServerConfig) -> bytes | None:
    """The DER certificate the server presents to us, even when it no longer verifies.

    Verification is off for this probe only, so an expired server certificate can be reported
    by its date instead of as a handshake failure; nothing but the handshake is exchanged.
    """
    ctx = client_context(server)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    url = URL(server.dcap_url)
    async with asyncio.timeout(server.request_timeout_s):
        _, writer = await asyncio.open_connection(url.host, url.port, ssl=ctx)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der: bytes | None = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    return der


def server_cert_fetch(store: IdentityStore, server: ServerConfig) -> ServerCertFetch:
    """A fetch for `ExpiryWatch.run` presenting the identity in force."""

    async def fetch() -> bytes | None:
        return await server_certificate(store.current().server_config(server))

    return fetch
