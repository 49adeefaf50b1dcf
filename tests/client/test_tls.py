"""Mutual TLS against the lab server: CCM8, and failures that tell the installer what is wrong."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from app.client import errors
from app.client.http import HttpClient
from app.client.tls import CCM8, ccm8_cipher_string, client_context
from app.config import ServerConfig, TlsOptions
from app.sep.dcap import DeviceCapability
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer


async def _get_dcap(cfg: ServerConfig, ctx: ssl.SSLContext | None = None) -> DeviceCapability:
    async with HttpClient(cfg, ssl_context=ctx) as http:
        return await http.get(cfg.dcap_url, DeviceCapability)


def test_seclevel_follows_the_openssl_version() -> None:
    text = ccm8_cipher_string()
    assert text.startswith(CCM8)
    assert ("@SECLEVEL=0" in text) == (ssl.OPENSSL_VERSION_INFO >= (3, 2))


@pytest.mark.parametrize("client_ccm8_only", [False, True])
async def test_ccm8_only_server_handshake(pki: Pki, client_ccm8_only: bool) -> None:
    async with LabServer(pki, ccm8_only=True) as server:
        cfg = server.client_config(tls=TlsOptions(ccm8_only=client_ccm8_only))
        await _get_dcap(cfg)
    assert server.requests[-1].cipher == CCM8
    assert server.requests[-1].status == 200


async def test_default_link_is_modern_tls(lab_server: LabServer, server_config: ServerConfig) -> None:
    await _get_dcap(server_config)
    cipher = lab_server.requests[-1].cipher
    assert cipher is not None and cipher.startswith("ECDHE-ECDSA")


async def test_hostname_checked_against_the_127_0_0_1_san(lab_server: LabServer) -> None:
    cfg = lab_server.client_config(tls=TlsOptions(check_hostname=True))
    await _get_dcap(cfg)
    cfg = lab_server.client_config(dcap_url=lab_server.dcap_url.replace("127.0.0.1", "localhost"))
    await _get_dcap(cfg)


async def test_wrong_ca(lab_server: LabServer, pki: Pki) -> None:
    assert pki.other_ca is not None
    cfg = lab_server.client_config(ca_file=pki.other_ca.cert)
    with pytest.raises(errors.TlsHandshakeError, match=r"server's certificate is not trusted.*other-ca\.crt"):
        await _get_dcap(cfg)


async def test_missing_client_certificate_file(lab_server: LabServer, tmp_path: Path) -> None:
    cfg = lab_server.client_config(cert_file=tmp_path / "nope.crt")
    with pytest.raises(errors.TlsConfigError, match=r"cannot load the client certificate .*nope\.crt"):
        await _get_dcap(cfg)


async def test_no_client_certificate_presented(lab_server: LabServer, pki: Pki) -> None:
    cfg = lab_server.client_config()
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.load_verify_locations(cafile=str(pki.ca.cert))
    with pytest.raises(errors.TlsHandshakeError, match=r"TLS handshake refused.*does not accept our client"):
        await _get_dcap(cfg, bare)
    assert lab_server.requests == []


async def test_expired_client_certificate(lab_server: LabServer, caplog: pytest.LogCaptureFixture) -> None:
    cfg = lab_server.client_config("expired")
    with pytest.raises(errors.TlsHandshakeError, match=r"our client certificate .*expired\.crt expired on"):
        await _get_dcap(cfg)
    assert any("expired on" in r.getMessage() for r in caplog.records)


async def test_client_certificate_from_another_ca(lab_server: LabServer) -> None:
    cfg = lab_server.client_config("foreign")
    with pytest.raises(errors.TlsHandshakeError, match="issued by CN=Somebody Else's CA"):
        await _get_dcap(cfg)


def test_context_is_tls12_or_later_with_ccm8_offered(server_config: ServerConfig) -> None:
    ctx = client_context(server_config)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    names = [c["name"] for c in ctx.get_ciphers()]
    assert CCM8 in names and "ECDHE-ECDSA-AES128-GCM-SHA256" in names
    only = client_context(dataclasses.replace(server_config, tls=TlsOptions(ccm8_only=True)))
    # TLS 1.3 suites are listed too but cannot be used: ccm8_only pins TLS 1.2
    assert [c["name"] for c in only.get_ciphers() if not c["name"].startswith("TLS_")] == [CCM8]
    assert only.maximum_version == ssl.TLSVersion.TLSv1_2


def test_unreadable_ca_file_names_the_file(server_config: ServerConfig, tmp_path: Path) -> None:
    with pytest.raises(errors.TlsConfigError, match=r"cannot load the CA file .*missing-ca\.pem"):
        client_context(dataclasses.replace(server_config, ca_file=tmp_path / "missing-ca.pem"))
