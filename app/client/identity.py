"""Our device identity as the server sees it: LFDI and SFDI of the client certificate (§6.3.3-6.3.4).

The arithmetic lives in app.sep.identity; this is the small view the session carries around.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.sep.identity import lfdi_from_der, load_cert_identity, sfdi_from_lfdi

__all__ = ["DeviceIdentity", "identity_of_der", "identity_of_pem_file", "lfdi_from_der", "sfdi_from_lfdi"]


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """LFDI (40 lowercase hex digits) and SFDI (decimal with its check digit)."""

    lfdi: str
    sfdi: int


def identity_of_der(der: bytes) -> DeviceIdentity:
    """The identity of a DER-encoded certificate."""
    lfdi = lfdi_from_der(der)
    return DeviceIdentity(lfdi, sfdi_from_lfdi(lfdi))


def identity_of_pem_file(path: Path) -> DeviceIdentity:
    """The identity of the certificate file at `path`; raises app.sep.identity.IdentityError."""
    ident = load_cert_identity(path)
    return DeviceIdentity(ident.lfdi, ident.sfdi)
