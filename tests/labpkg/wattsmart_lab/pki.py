"""A throw-away 2030.5 test PKI: P-256 ECDSA CA, server and client certificates written to a folder.

2030.5 (§6.11) mandates ECC P-256 certificates with ECDSA; a real device certificate carries no
expiry (notAfter 99991231235959Z), so ours are long-lived unless an expired one is asked for.
Used by the tests and by `make run`; never for anything but 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.identity.csr import DEVICE_KEY_USAGE

_LONG = dt.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class CertFiles:
    """One certificate and its private key on disk (PEM)."""

    name: str
    cert: Path
    key: Path

    def der(self) -> bytes:
        """The certificate in DER form (what the LFDI is computed from)."""
        pem = self.cert.read_bytes()
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class Pki:
    """Paths of a generated PKI: `ca` verifies `server` and every entry of `clients`."""

    folder: Path
    ca: CertFiles
    server: CertFiles
    clients: dict[str, CertFiles] = field(default_factory=dict)
    #: a second CA that trusts nothing of ours; for "wrong CA" tests
    other_ca: CertFiles | None = None

    def client(self, name: str = "client") -> CertFiles:
        """The client certificate called `name`."""
        return self.clients[name]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> CertFiles:
    cert_path = folder / f"{name}.crt"
    key_path = folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertFiles(name, cert_path, key_path)


def _ca(name: str, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _LONG)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(DEVICE_KEY_USAGE, critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def generate(
    folder: Path,
    clients: tuple[str, ...] = ("client",),
    *,
    expired: tuple[str, ...] = (),
    foreign: tuple[str, ...] = (),
    now: dt.datetime | None = None,
) -> Pki:
    """Write a CA, a 127.0.0.1/localhost server cert and client certs into `folder`.

    Names in `expired` get a client certificate that ended yesterday; names in `foreign` get one
    signed by a second CA (also written, as `other_ca`) that the server does not trust.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC)
    ca = _ca("Wattsmart Lab Test CA", now)
    other = _ca("Somebody Else's CA", now) if foreign else None
    start = now - dt.timedelta(days=1)
    server = _leaf("localhost", ca, server=True, not_before=start, not_after=now + _LONG)
    written: dict[str, CertFiles] = {}
    for name in (*clients, *expired, *foreign):
        if name in written:
            raise ValueError(f"client name {name!r} given twice")
        if name in expired:
            cert = _leaf(
                name,
                ca,
                server=False,
                not_before=now - dt.timedelta(days=30),
                not_after=now - dt.timedelta(days=1),
            )
        elif name in foreign:
            assert other is not None
            cert = _leaf(name, other, server=False, not_before=start, not_after=now + _LONG)
        else:
            cert = _leaf(name, ca, server=False, not_before=start, not_after=now + _LONG)
        written[name] = _write(folder, name, *cert)
    return Pki(
        folder=folder,
        ca=_write(folder, "ca", *ca),
        server=_write(folder, "server", *server),
        clients=written,
        other_ca=_write(folder, "other-ca", *other) if other else None,
    )
