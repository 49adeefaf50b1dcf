"""The DER certificate reader agrees with `cryptography` on names and dates, and refuses what is not DER."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.sep.certificate import (
    CertificateFormatError,
    load_certificate,
    parse_certificate,
    pem_certificates,
)

KEY = ec.generate_private_key(ec.SECP256R1())
UTC = dt.UTC


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute:
    return x509.NameAttribute(oid, value)


NAMES = {
    "plain": x509.Name([_attr(NameOID.COMMON_NAME, "gw-1"), _attr(NameOID.ORGANIZATION_NAME, "Wattsmart")]),
    "escapes": x509.Name(
        [_attr(NameOID.COMMON_NAME, '#lead, "q"+<x>;\\ trail '), _attr(NameOID.COUNTRY_NAME, "DE")]
    ),
    "multi-valued": x509.Name(
        [
            x509.RelativeDistinguishedName(
                [_attr(NameOID.COMMON_NAME, "a"), _attr(NameOID.SERIAL_NUMBER, "WS-000123")]
            ),
            x509.RelativeDistinguishedName([_attr(NameOID.LOCALITY_NAME, "Zürich")]),
        ]
    ),
    "every short name and an OID": x509.Name(
        [
            _attr(NameOID.DOMAIN_COMPONENT, "example"),
            _attr(NameOID.USER_ID, "u1"),
            _attr(NameOID.STREET_ADDRESS, "Hauptstr. 1"),
            _attr(NameOID.STATE_OR_PROVINCE_NAME, "ZH"),
            _attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "Geräte €"),
            _attr(NameOID.EMAIL_ADDRESS, "ops@example.org"),
        ]
    ),
    "empty": x509.Name([]),
}

DATES = {
    "UTCTime": (
        dt.datetime(2024, 2, 29, 1, 2, 3, tzinfo=UTC),
        dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
    ),
    "UTCTime, last century": (dt.datetime(1999, 5, 1, tzinfo=UTC), dt.datetime(2035, 1, 1, tzinfo=UTC)),
    "GeneralizedTime": (dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2050, 1, 1, tzinfo=UTC)),
    # 2030.5 device certificates never expire (RFC 5280 §4.1.2.5's 99991231235959Z)
    "no well-defined expiry": (
        dt.datetime(2020, 1, 1, tzinfo=UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ),
}


def _cert(
    subject: x509.Name, issuer: x509.Name, not_before: dt.datetime, not_after: dt.datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(KEY, hashes.SHA256())
    )


@pytest.mark.parametrize("name", NAMES, ids=list(NAMES))
@pytest.mark.parametrize("dates", DATES, ids=list(DATES))
def test_facts_match_cryptography(name: str, dates: str) -> None:
    cert = _cert(NAMES[name], NAMES["plain"], *DATES[dates])
    der = cert.public_bytes(serialization.Encoding.DER)
    read = parse_certificate(der)
    assert read.der == der
    assert read.subject == cert.subject.rfc4514_string()
    assert read.issuer == cert.issuer.rfc4514_string() == "O=Wattsmart,CN=gw-1"
    assert read.not_before == cert.not_valid_before_utc
    assert read.not_after == cert.not_valid_after_utc


def test_an_rsa_v1_style_certificate_reads_too() -> None:
    """No extensions, another key type: the reader stops at the subject and does not care."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(NAMES["plain"])
        .issuer_name(NAMES["plain"])
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(DATES["UTCTime"][0])
        .not_valid_after(DATES["UTCTime"][1])
        .sign(key, hashes.SHA256())
    )
    read = parse_certificate(cert.public_bytes(serialization.Encoding.DER))
    assert (read.subject, read.not_after) == ("O=Wattsmart,CN=gw-1", DATES["UTCTime"][1])


def test_pem_bundle_and_der_file() -> None:
    certs = [_cert(NAMES[n], NAMES["plain"], *DATES["UTCTime"]) for n in ("plain", "escapes")]
    bundle = b"comment line\n" + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    read = pem_certificates(bundle)
    assert [c.subject for c in read] == [c.subject.rfc4514_string() for c in certs]
    assert load_certificate(bundle) == read[0]
    assert load_certificate(certs[1].public_bytes(serialization.Encoding.DER)) == read[1]
    assert pem_certificates(b"no certificates here") == []


def _der() -> bytes:
    return _cert(NAMES["plain"], NAMES["plain"], *DATES["UTCTime"]).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "truncated"),
        (b"hello, not a certificate", "expected tag 0x30"),
        (_der()[:-10], "runs past the end"),
        (_der() + b"\x00", "trailing bytes"),
        (_der()[:40], "runs past the end|truncated"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA", "not terminated"),
        (b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", "not valid base64"),
        (b"\x30\x80\x00\x00", "unsupported length"),
    ],
    ids=["empty", "text", "cut", "trailing", "head", "unterminated PEM", "bad base64", "indefinite length"],
)
def test_malformed_input_is_one_clear_error(data: bytes, match: str) -> None:
    with pytest.raises(CertificateFormatError, match=match):
        load_certificate(data)


def test_a_time_outside_rfc_5280_is_refused() -> None:
    der = bytearray(_der())
    at = der.index(b"\x17\x0d") + 2  # the first UTCTime: notBefore
    der[at + 12] = ord("+")  # "...Z" -> "...+": a local-time offset, not allowed in certificates
    with pytest.raises(CertificateFormatError, match="unsupported time"):
        parse_certificate(bytes(der))


@pytest.mark.parametrize(("text", "why"), [(b"991301000000Z", "month 13"), (b"99 501000000Z", "a space")])
def test_a_time_that_is_no_date_is_refused(text: bytes, why: str) -> None:
    der = bytearray(_der())
    at = der.index(b"\x17\x0d") + 2
    der[at : at + 13] = text
    with pytest.raises(CertificateFormatError, match="bad time"):
        parse_certificate(bytes(der))
