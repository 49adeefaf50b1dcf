"""The few X.509 facts the running gateway needs (names, validity), read from DER without a library.

The box reads its own, the server's and the root's certificate to derive the LFDI and to watch
expiry; loading `cryptography` for that costs ~10 MB of resident memory for the whole run. This
reader walks the DER structure of RFC 5280 §4.1 only as far as `subject` and checks nothing a
TLS library would: signatures and chains stay with OpenSSL (at the handshake) and with the
`identity install` command.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)

# Universal tags used below.
_INTEGER, _BIT_STRING, _OID, _SEQUENCE, _SET = 0x02, 0x03, 0x06, 0x30, 0x31
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_VERSION = 0xA0  # [0] EXPLICIT, context-specific, constructed

#: directory string types and how their bytes become text
_STRINGS = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString (T.61; latin-1 as the common reading)
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}

#: the attribute names RFC 4514 §3 defines (other attributes are written as their dotted OID)
_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}


class CertificateFormatError(ValueError):
    """The bytes are not a DER X.509 certificate this reader understands."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate's DER and the facts read from it; equal when the DER is equal."""

    der: bytes
    #: RFC 4514 strings, most specific attribute first (e.g. "CN=gw,O=Wattsmart")
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime

    def __post_init__(self) -> None:
        if self.not_before.tzinfo is None or self.not_after.tzinfo is None:
            raise ValueError("certificate times must be timezone-aware")


def parse_certificate(der: bytes) -> Certificate:
    """Read subject, issuer and validity from a DER certificate; CertificateFormatError if it is not one."""
    try:
        cert, rest = _take(der, 0, _SEQUENCE)
        if rest != len(der):
            raise CertificateFormatError("trailing bytes after the certificate")
        tbs_start, tbs_end = _take(der, cert[0], _SEQUENCE)
        pos = tbs_start[0]
        if der[pos] == _VERSION:
            pos = _take(der, pos, _VERSION)[1]
        pos = _take(der, pos, _INTEGER)[1]  # serialNumber
        pos = _take(der, pos, _SEQUENCE)[1]  # signature algorithm
        issuer, pos = _take(der, pos, _SEQUENCE)
        validity, pos = _take(der, pos, _SEQUENCE)
        subject, pos = _take(der, pos, _SEQUENCE)
        if pos > tbs_end:
            raise CertificateFormatError("fields overrun the TBSCertificate")
        not_before, after_pos = _time(der, validity[0])
        not_after, _ = _time(der, after_pos)
        return Certificate(der, _name(der, *subject), _name(der, *issuer), not_before, not_after)
    except IndexError:
        raise CertificateFormatError("truncated DER") from None


def pem_certificates(data: bytes) -> list[Certificate]:
    """Every CERTIFICATE block in PEM `data`, in order; CertificateFormatError if one is malformed."""
    out = []
    for match in _PEM_BLOCK.finditer(data):
        try:
            der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
        except binascii.Error:
            raise CertificateFormatError("a PEM CERTIFICATE block is not valid base64") from None
        out.append(parse_certificate(der))
    return out


def load_certificate(data: bytes) -> Certificate:
    """The first certificate of PEM `data`, or `data` read as DER when it holds no PEM block."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        found = pem_certificates(data)
        if not found:
            raise CertificateFormatError("the PEM CERTIFICATE block is not terminated")
        return found[0]
    return parse_certificate(data)


# --- DER -----------------------------------------------------------------------------------------


def _take(der: bytes, pos: int, tag: int) -> tuple[tuple[int, int], int]:
    """The element of `tag` at `pos`: ((content start, content end), position after it)."""
    if der[pos] != tag:
        raise CertificateFormatError(f"expected tag 0x{tag:02x} at byte {pos}, found 0x{der[pos]:02x}")
    length = der[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise CertificateFormatError(f"unsupported length encoding at byte {pos}")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise CertificateFormatError(f"element at byte {pos} runs past the end")
    return (start, end), end


def _any(der: bytes, pos: int) -> tuple[int, tuple[int, int], int]:
    """Tag, content span and following position of the element at `pos`, whatever its tag."""
    tag = der[pos]
    span, end = _take(der, pos, tag)
    return tag, span, end


def _time(der: bytes, pos: int) -> tuple[dt.datetime, int]:
    tag, (start, end), after = _any(der, pos)
    text = der[start:end].decode("ascii")
    try:
        if tag == _UTC_TIME and len(text) == 13 and text.endswith("Z"):
            year = int(text[:2])
            # RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY, else 20YY
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        elif tag != _GENERALIZED_TIME or len(text) != 15 or not text.endswith("Z"):
            raise CertificateFormatError(f"unsupported time {text!r} (tag 0x{tag:02x})")
        if not text[:14].isdigit():
            raise ValueError("not digits")
        # by hand, not strptime: `_strptime` (with calendar and locale) would stay loaded for one call
        year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
        hour, minute, second = int(text[8:10]), int(text[10:12]), int(text[12:14])
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC), after
    except ValueError as exc:
        raise CertificateFormatError(f"bad time {text!r}: {exc}") from None


def _oid(content: bytes) -> str:
    if not content:
        raise CertificateFormatError("empty OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _name(der: bytes, start: int, end: int) -> str:
    """RFC 4514 text of a Name: its RDNs in reverse order, multi-valued RDNs joined by '+'."""
    rdns: list[str] = []
    pos = start
    while pos < end:
        (set_start, set_end), pos = _take(der, pos, _SET)
        parts: list[str] = []
        inner = set_start
        while inner < set_end:
            (atv_start, _), inner = _take(der, inner, _SEQUENCE)
            (oid_start, oid_end), value_pos = _take(der, atv_start, _OID)
            tag, (v_start, v_end), _ = _any(der, value_pos)
            oid = _oid(der[oid_start:oid_end])
            raw = der[v_start:v_end]
            encoding = _STRINGS.get(tag)
            if encoding is None:
                value = "#" + raw.hex()  # not a string: its bytes, as RFC 4514 §2.4 allows
            else:
                try:
                    value = _escape(raw.decode(encoding))
                except UnicodeDecodeError:
                    raise CertificateFormatError(f"attribute {oid} is not valid {encoding}") from None
            parts.append(f"{_SHORT_NAMES.get(oid, oid)}={value}")
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns))


def _escape(value: str) -> str:
    """RFC 4514 §2.4 escaping of an attribute value."""
    if not value:
        return ""
    for char in ("\\", '"', "+", ",", ";", "<", ">"):
        value = value.replace(char, "\\" + char)
    value = value.replace("\0", "\\00")
    if value[0] in ("#", " "):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value
