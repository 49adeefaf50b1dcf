"""A running session follows installs and falls back, against the in-process TLS 2030.5 server.

`Session` below is the wiring the composition root does: build the HTTP client from
`store.current()`, rebuild it when `store.changed()`, `confirm_working()` after a success and
`fall_back()` when the server refuses a certificate still on trial.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.client.errors import NotAuthorized, TlsHandshakeError
from app.client.http import HttpClient
from app.config import ServerConfig
from app.identity import CsrProfile, ExpiryLevel, ExpiryWatch, IdentityFiles, IdentityStore, watch_store
from app.identity.peer import server_cert_fetch
from app.sep.dcap import DeviceCapability
from tests.identity.conftest import DAY, NOW, pem
from wattsmart_lab.pki import CertFiles, Pki
from wattsmart_lab.server import LabServer


class Session:
    """The session layer's side of hot pickup and rotation, as the composition root wires it."""

    def __init__(self, store: IdentityStore, server: ServerConfig) -> None:
        self.store, self.server = store, server
        self.files: IdentityFiles | None = None
        self.http: HttpClient | None = None
        self.opened = 0

    async def _open(self) -> HttpClient:
        await self.close()
        self.files = self.store.current()
        self.http = HttpClient(self.files.server_config(self.server))
        await self.http.__aenter__()
        self.opened += 1
        return self.http

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def dcap(self) -> DeviceCapability:
        http = self.http
        if http is None or self.store.changed(self.files):
            http = await self._open()  # a reconnect, not a restart
        try:
            dcap = await http.get(self.server.dcap_url, DeviceCapability)
        except (TlsHandshakeError, NotAuthorized):
            if self.store.on_trial() and self.store.fall_back(self.files):
                return await self.dcap()
            raise
        self.store.confirm_working(self.files)
        return dcap


def _sign(csr_file: Path, ca: CertFiles) -> bytes:
    """Have the lab CA (or another) sign our CSR, the way the utility's CA would."""
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 365 * DAY)
        .sign(ca_key, hashes.SHA256())
    )
    return pem(cert)


def _store(tmp_path: Path, pki: Pki) -> IdentityStore:
    # a root bundle that also holds the stranger CA, so install accepts what the server refuses
    bundle = tmp_path / "roots.pem"
    assert pki.other_ca is not None
    bundle.write_bytes(pki.ca.cert.read_bytes() + pki.other_ca.cert.read_bytes())
    (tmp_path / "state").mkdir()
    return IdentityStore(tmp_path / "state" / "identity", bundle)


async def test_running_session_picks_up_a_new_certificate(
    lab_server: LabServer, pki: Pki, tmp_path: Path
) -> None:
    store = _store(tmp_path, pki)
    first = store.prepare(CsrProfile())
    store.install(_sign(first.csr, pki.ca))
    session = Session(store, lab_server.client_config(request_timeout_s=2.0))
    try:
        await session.dcap()
        old = store.current().identity.lfdi
        assert lab_server.requests[-1].lfdi == old

        second = store.prepare(CsrProfile())  # rotation prepared while the old one is in use
        await session.dcap()
        assert lab_server.requests[-1].lfdi == old
        store.install(_sign(second.csr, pki.ca))  # what `identity install` does from a shell
        assert store.on_trial()

        await session.dcap()
        new = store.current().identity.lfdi
        assert new != old
        assert lab_server.requests[-1].lfdi == new
        assert session.opened == 2
        assert not store.on_trial()  # confirmed by the server, previous retired
        assert len(list(store.root.glob("gen-*"))) == 1
    finally:
        await session.close()


async def test_certificate_the_server_refuses_falls_back_to_the_old_one(
    lab_server: LabServer, pki: Pki, tmp_path: Path
) -> None:
    store = _store(tmp_path, pki)
    first = store.prepare(CsrProfile())
    store.install(_sign(first.csr, pki.ca))
    good = store.current()
    session = Session(store, lab_server.client_config(request_timeout_s=2.0))
    try:
        await session.dcap()
        second = store.prepare(CsrProfile())
        assert pki.other_ca is not None
        bad = store.install(_sign(second.csr, pki.other_ca))  # valid to us, unknown to the server
        await session.dcap()  # the refusal is absorbed: back on the old identity, no outage
        assert store.current() == good
        assert lab_server.requests[-1].lfdi == good.identity.lfdi
        assert bad.identity.lfdi not in {r.lfdi for r in lab_server.requests}  # refused at the handshake
        assert not store.on_trial()
        pending = store.pending()
        assert pending is not None and pending.generation == bad.generation
        assert session.opened == 3  # old, new (refused), old again
    finally:
        await session.close()


async def test_server_certificate_expiry_is_watched(lab_server: LabServer, pki: Pki, tmp_path: Path) -> None:
    store = _store(tmp_path, pki)
    first = store.prepare(CsrProfile())
    store.install(_sign(first.csr, pki.ca))
    server_cert = x509.load_pem_x509_certificate(pki.server.cert.read_bytes())
    fetch = server_cert_fetch(store, lab_server.client_config(request_timeout_s=2.0))
    assert await fetch() == server_cert.public_bytes(serialization.Encoding.DER)

    late = server_cert.not_valid_after_utc - 29 * DAY
    watch = watch_store(store, ExpiryWatch(wall_clock=lambda: late))
    task = asyncio.create_task(watch.run(interval_s=3600, fetch_server=fetch))
    try:
        for _ in range(200):
            if "server certificate" in watch.results:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert watch.results["server certificate"].level is ExpiryLevel.WARNING
    assert watch.attention
