"""Device identity from its certificate: LFDI and SFDI (2030.5-2018 §6.3.3, §6.3.4)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.sep.certificate import CertificateFormatError, load_certificate
from app.sep.exceptions import ResourceError

_LOGGER = logging.getLogger(__name__)

_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


class IdentityError(ResourceError):
    """The certificate file is missing, unreadable or not a certificate: fix the configured path."""


@dataclass(frozen=True, slots=True)
class CertIdentity:
    """What the installer hands the utility for out-of-band registration, plus the cert's facts."""

    lfdi: str
    sfdi: int
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime


def lfdi_from_der(der: bytes) -> str:
    """LFDI: the leftmost 160 bits of SHA-256 over the certificate's DER, as 40 lowercase hex."""
    return hashlib.sha256(der).hexdigest()[:40]


def sfdi_from_lfdi(lfdi: str) -> int:
    """SFDI: the leftmost 36 bits as decimal, then a check digit making the digit sum ≡ 0 mod 10."""
    if len(lfdi) < 9:
        raise ValueError(f"LFDI {lfdi!r} is shorter than 9 hex digits")
    try:
        value = int(lfdi[:9], 16)
    except ValueError:
        raise ValueError(f"LFDI {lfdi!r} is not hexadecimal") from None
    # Sum of digits, not Luhn (§6.3.4); the XSD's "Section 8.3.2" reference is stale numbering.
    check = (10 - sum(int(d) for d in str(value)) % 10) % 10
    return value * 10 + check


def same_lfdi(a: str, b: str) -> bool:
    """LFDIs are hexBinary: compare them case-insensitively."""
    return a.lower() == b.lower()


def load_cert_identity(path: str | Path) -> CertIdentity:
    """Read a PEM or DER certificate file and derive its LFDI/SFDI; raise IdentityError if it can't."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"certificate file {path} does not exist") from None
    except IsADirectoryError:
        raise IdentityError(f"certificate file {path} is a directory") from None
    except OSError as exc:
        raise IdentityError(f"cannot read certificate file {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise IdentityError(f"certificate file {path} is empty")
    try:
        cert = load_certificate(data)
    except CertificateFormatError as exc:
        if _PEM_MARKER in data:
            detail = f"has a PEM CERTIFICATE block that is not a valid X.509 certificate ({exc})"
        else:
            detail = "is neither a PEM nor a DER X.509 certificate"
        raise IdentityError(f"certificate file {path} {detail}") from None
    # The fingerprint is over the DER encoding, whatever the file's encoding (§6.3.3).
    lfdi = lfdi_from_der(cert.der)
    identity = CertIdentity(
        lfdi=lfdi,
        sfdi=sfdi_from_lfdi(lfdi),
        subject=cert.subject,
        issuer=cert.issuer,
        not_before=cert.not_before,
        not_after=cert.not_after,
    )
    _LOGGER.debug("certificate %s: LFDI %s SFDI %d", path, identity.lfdi, identity.sfdi)
    return identity
