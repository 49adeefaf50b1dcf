"""The SFDI and LFDI as a terminal QR code, for the installer's phone (no images, no Pillow)."""

from __future__ import annotations

import functools
import io
from typing import Any

from app.sep.identity import CertIdentity


def _code(payload: str) -> Any:
    """The QR code of `payload`; `qrcode` is loaded on the first code drawn, not with the gateway."""
    import qrcode  # type: ignore[import-untyped]  # no stubs published; only 4 calls used

    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(payload)
    code.make(fit=True)
    return code


def qr_payload(identity: CertIdentity) -> str:
    """The text encoded: upper case keeps it in QR alphanumeric mode (smaller); hexBinary ignores case."""
    return payload_of(identity.sfdi, identity.lfdi)


def qr_text(payload: str, *, invert: bool = True) -> str:
    """`payload` as a QR code in Unicode half blocks; `invert` suits light-on-dark terminals."""
    code = _code(payload)
    out = io.StringIO()
    code.print_ascii(out=out, invert=invert)
    return out.getvalue()


def payload_of(sfdi: object, lfdi: str) -> str:
    """`qr_payload` from the SFDI and LFDI as the status document shows them."""
    return f"SFDI:{sfdi} LFDI:{lfdi.upper()}"


@functools.lru_cache(maxsize=2)
def qr_svg(payload: str) -> str:
    """`payload` as an inline SVG QR code (dark modules as one path), for the status page (cached)."""
    code = _code(payload)
    matrix: list[list[bool]] = code.get_matrix()
    size = len(matrix)
    cells = "".join(f"M{x} {y}h1v1h-1z" for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark)
    return (
        f'<svg class="qr" viewBox="0 0 {size} {size}" shape-rendering="crispEdges" role="img" '
        f'aria-label="QR code of the SFDI and LFDI"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path d="{cells}" fill="#000"/></svg>'
    )
