"""LFDI/SFDI: the published vectors and a freshly generated P-256 certificate."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from app.sep.identity import IdentityError, lfdi_from_der, load_cert_identity, same_lfdi, sfdi_from_lfdi


@pytest.mark.parametrize(
    ("lfdi", "sfdi"),
    [
        ("3e4f45ab31edfe5b67e343e5e4562e31984e23e5", 167261211391),  # 2030.5-2018 §6.3.4 example
        ("0F3078CFDDAEE28DC20B95635DC116CC2A6D877F", 40773583337),  # cactus-client README
        ("854d10a201ca99e5e90d3c3e1f9bc1c3bd075f3b", 357827241281),  # envoy certificate1
    ],
)
def test_sfdi_vectors(lfdi: str, sfdi: int) -> None:
    assert sfdi_from_lfdi(lfdi) == sfdi
    assert sfdi_from_lfdi(lfdi.swapcase()) == sfdi
    assert sum(int(d) for d in str(sfdi)) % 10 == 0


def test_sfdi_refuses_non_hex() -> None:
    with pytest.raises(ValueError, match="not hexadecimal"):
        sfdi_from_lfdi("zz4f45ab31edfe5b")
    with pytest.raises(ValueError, match="shorter"):
        sfdi_from_lfdi("3e4f")


def test_lfdi_is_leftmost_160_bits_of_sha256() -> None:
    der = b"\x30\x03\x02\x01\x01"
    assert lfdi_from_der(der) == hashlib.sha256(der).hexdigest()[:40]
    assert same_lfdi("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5", "3e4f45ab31edfe5b67e343e5e4562e31984e23e5")


def _make_cert() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wattsmart-gateway-test")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test SERCA")])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


@pytest.mark.parametrize("encoding", [Encoding.PEM, Encoding.DER])
def test_generated_certificate(tmp_path: Path, encoding: Encoding) -> None:
    cert = _make_cert()
    path = tmp_path / "client.crt"
    path.write_bytes(cert.public_bytes(encoding))
    identity = load_cert_identity(path)
    der = cert.public_bytes(Encoding.DER)
    assert identity.lfdi == hashlib.sha256(der).hexdigest()[:40]
    assert identity.lfdi == cert.fingerprint(hashes.SHA256()).hex()[:40]
    assert identity.sfdi == sfdi_from_lfdi(identity.lfdi)
    assert identity.sfdi // 10 == int(identity.lfdi[:9], 16)
    assert identity.subject == "CN=wattsmart-gateway-test"
    assert identity.issuer == "CN=Test SERCA"
    assert identity.not_before == datetime(2026, 1, 1, tzinfo=UTC)
    assert identity.not_after.tzinfo is not None


def test_pem_with_key_and_chain_uses_first_certificate(tmp_path: Path) -> None:
    first, second = _make_cert(), _make_cert()
    path = tmp_path / "bundle.pem"
    path.write_bytes(
        b"# device bundle\n" + first.public_bytes(Encoding.PEM) + second.public_bytes(Encoding.PEM)
    )
    assert load_cert_identity(str(path)).lfdi == lfdi_from_der(first.public_bytes(Encoding.DER))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pem"
    with pytest.raises(IdentityError, match=f"{path} does not exist"):
        load_cert_identity(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="is a directory"):
        load_cert_identity(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.pem"
    path.write_bytes(b"x")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    # Simulated: the suite may run as root, where chmod 000 does not stop reads.
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(IdentityError, match=f"cannot read certificate file {path}: Permission denied"):
        load_cert_identity(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, not a certificate", "is neither a PEM nor a DER X.509 certificate"),
        (b"\n", "is empty"),
        (
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "has a PEM CERTIFICATE block that is not a valid X.509 certificate",
        ),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "is neither a PEM nor a DER"),
    ],
)
def test_garbage_content(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "garbage.pem"
    path.write_bytes(content)
    with pytest.raises(IdentityError, match=f"certificate file {path} {message}"):
        load_cert_identity(path)
