"""Our device identity as the server sees it: LFDI and SFDI of the client certificate (§6.3.3-6.3.4)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """LFDI (40 lowercase hex digits) and SFDI (decimal with its check digit)."""

    lfdi: str
    sfdi: int


def lfdi_from_der(der: bytes) -> str:
    """Leftmost 160 bits of SHA-256 over the certificate's DER encoding, as lowercase hex."""
    return hashlib.sha256(der).hexdigest()[:40]


def sfdi_from_lfdi(lfdi: str) -> int:
    """Leftmost 36 bits as decimal, then a check digit making the digit sum a multiple of 10."""
    value = int(lfdi[:9], 16)
    check = (10 - sum(int(d) for d in str(value)) % 10) % 10
    return value * 10 + check


def identity_of_der(der: bytes) -> DeviceIdentity:
    """The identity of a DER-encoded certificate."""
    lfdi = lfdi_from_der(der)
    return DeviceIdentity(lfdi, sfdi_from_lfdi(lfdi))


def identity_of_pem_file(path: Path) -> DeviceIdentity:
    """The identity of the PEM certificate at `path`."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return identity_of_der(cert.public_bytes(serialization.Encoding.DER))
