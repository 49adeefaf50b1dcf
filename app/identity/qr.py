"""The SFDI and LFDI as a terminal QR code, for the installer's phone (no images, no Pillow)."""

from __future__ import annotations

import io

import qrcode  # type: ignore[import-untyped]  # no stubs published; only 4 calls used

from app.sep.identity import CertIdentity


def qr_payload(identity: CertIdentity) -> str:
    """The text encoded: upper case keeps it in QR alphanumeric mode (smaller); hexBinary ignores case."""
    return f"SFDI:{identity.sfdi} LFDI:{identity.lfdi.upper()}"


def qr_text(payload: str, *, invert: bool = True) -> str:
    """`payload` as a QR code in Unicode half blocks; `invert` suits light-on-dark terminals."""
    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(payload)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=invert)
    return out.getvalue()
