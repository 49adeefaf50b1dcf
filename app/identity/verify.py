"""Checks a certificate must pass before it becomes the box's identity: our key, in date, a chain to the root.

The chain is verified with `cryptography.x509.verification` (client-certificate policy): every
link's signature, issuer, CA flag, key usage and validity at `now`, up to a root from the
configured CA file. CAs get the Web PKI checks. 2030.5 certificates carry a critical
certificatePolicies extension (§6.11), which the Web PKI policy would refuse as unknown, and a
device certificate need not have a subjectAltName, which it requires; so our certificate gets
its own policy: not a CA, usable for signatures, clientAuth if it restricts its usage at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from app.identity.errors import CertificateRefused


def read_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    """All certificates in `data` (PEM, one or many, or a single DER), in order."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertificateRefused(f"{what} is not a PEM or DER certificate") from None


def read_roots(ca_file: Path) -> list[x509.Certificate]:
    """The trusted 2030.5 roots from the configured CA file."""
    try:
        data = ca_file.read_bytes()
    except OSError as exc:
        raise CertificateRefused(f"cannot read the 2030.5 root (ca_file {ca_file}): {exc.strerror}") from None
    return read_certificates(data, f"the 2030.5 root (ca_file {ca_file})")


def public_der(key: ec.EllipticCurvePublicKey | x509.Certificate) -> bytes:
    """SubjectPublicKeyInfo bytes, to compare a certificate with a key."""
    public = key.public_key() if isinstance(key, x509.Certificate) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_dates(cert: x509.Certificate, now: dt.datetime) -> None:
    """Refuse a certificate that is not valid at `now`."""
    if now > cert.not_valid_after_utc:
        raise CertificateRefused(f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if now < cert.not_valid_before_utc:
        raise CertificateRefused(
            f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            f"(is the box's clock right? it says {now:%Y-%m-%d %H:%M} UTC)"
        )


def verify_chain(
    cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
) -> list[x509.Certificate]:
    """The verified chain from `cert` to a root, or CertificateRefused saying why it does not verify."""
    if not roots:
        raise CertificateRefused("the configured 2030.5 root (ca_file) holds no certificate")
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(roots)))
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
                x509.CertificatePolicies, _ANY, None
            ),
            ee_policy=_DEVICE_POLICY,
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(cert, list(intermediates))
    except verification.VerificationError as exc:
        detail = _missing_link(cert, intermediates, roots) or str(exc).removeprefix(
            "validation failed: "
        ).split(" (encountered")[0].removeprefix("candidates exhausted: ")
        raise CertificateRefused(
            f"the certificate chain does not verify to the configured 2030.5 root: {detail}"
        ) from None
    return list(verified.chain)


def _missing_link(
    cert: x509.Certificate, intermediates: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> str | None:
    """Say where the chain stops short of the roots (by names), or None when the names do link up."""
    root_names = {r.subject for r in roots}
    top, rest = cert, list(intermediates)
    while top.issuer not in root_names:
        parent = next((c for c in rest if c.subject == top.issuer), None)
        if parent is None or parent.subject == parent.issuer:
            break
        rest.remove(parent)
        top = parent
    if top.issuer in root_names:
        return None
    trusted = "; ".join(n.rfc4514_string() for n in root_names)
    issuer = top.issuer.rfc4514_string()
    if any(c.subject == top.issuer and c.subject == c.issuer for c in intermediates):
        return f'it leads to the root "{issuer}", not the configured one ({trusted})'
    if not intermediates:
        return f'its issuer "{issuer}" is not the configured root; give the CA\'s intermediates as CHAIN'
    return f'no certificate for "{issuer}" was given, and it is not the configured root ({trusted})'


_ANY = verification.Criticality.AGNOSTIC


def _not_ca(_: verification.Policy, __: x509.Certificate, ext: x509.BasicConstraints | None) -> None:
    if ext is not None and ext.ca:
        raise ValueError("a CA certificate cannot be the box's identity")


def _signs(_: verification.Policy, __: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    if ext is not None and not ext.digital_signature:
        raise ValueError("keyUsage lacks digitalSignature, which TLS client authentication needs")


def _client_auth(_: verification.Policy, __: x509.Certificate, ext: x509.ExtendedKeyUsage | None) -> None:
    allowed = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if ext is not None and not allowed & set(ext):
        raise ValueError("extendedKeyUsage does not allow clientAuth")


_DEVICE_POLICY = (
    verification.ExtensionPolicy.permit_all()
    .may_be_present(x509.CertificatePolicies, _ANY, None)
    .may_be_present(x509.BasicConstraints, _ANY, _not_ca)
    .may_be_present(x509.KeyUsage, _ANY, _signs)
    .may_be_present(x509.ExtendedKeyUsage, _ANY, _client_auth)
)
