"""The box's P-256 key and its certificate signing request for the 2030.5 device CA.

2030.5-2018 §6.11 device certificates are ECDSA P-256; they identify the hardware, not a host
name, so the CSR carries no DNS name. The CA sets the final profile; what we ask for is
configurable: subject, hardwareModuleName (RFC 4108, the 2030.5 device SAN), certificate
policies, and clientAuth for CAs that insist on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

#: id-on-hardwareModuleName (RFC 4108 §5)
HARDWARE_MODULE_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.4")
DEFAULT_SUBJECT = "CN=wattsmart-gateway"


@dataclass(frozen=True, slots=True)
class CsrProfile:
    """What the CSR asks for; validated on construction."""

    #: RFC 4514 subject, e.g. "CN=WS-000123,O=Wattsmart"; "" asks for an empty subject
    subject: str = DEFAULT_SUBJECT
    #: (hwType OID, hwSerialNum) for the hardwareModuleName subjectAltName
    hardware_module: tuple[str, str] | None = None
    #: certificate policy OIDs to request (the 2030.5 device policy is the CA's to set)
    policies: tuple[str, ...] = ()
    #: ask for extendedKeyUsage clientAuth (the 2030.5 profile itself has none)
    client_auth: bool = False

    def __post_init__(self) -> None:
        self.name()
        if self.hardware_module is not None:
            _oid(self.hardware_module[0], "hardware module type")
            if not self.hardware_module[1]:
                raise ValueError("hardware module serial number: empty, expected some text")
        for policy in self.policies:
            _oid(policy, "certificate policy")

    def name(self) -> x509.Name:
        """The subject as an x509.Name."""
        try:
            return x509.Name.from_rfc4514_string(self.subject) if self.subject else x509.Name([])
        except ValueError as exc:
            raise ValueError(
                f"subject {self.subject!r}: not an RFC 4514 name like 'CN=box,O=org' ({exc})"
            ) from None


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM: the service must start unattended, so the file mode guards it."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


#: key usage of a 2030.5 device certificate: ECDSA signatures and ECDHE key agreement (critical)
DEVICE_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def build_csr(key: ec.EllipticCurvePrivateKey, profile: CsrProfile) -> x509.CertificateSigningRequest:
    """A CSR for `key` asking for the extensions of `profile`, signed with ECDSA-SHA256."""
    subject = profile.name()
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    builder = builder.add_extension(DEVICE_KEY_USAGE, critical=True)
    if profile.hardware_module is not None:
        hw_type, serial = profile.hardware_module
        value = _der_sequence(_der_oid(hw_type) + _der(0x04, serial.encode()))
        san = x509.SubjectAlternativeName([x509.OtherName(HARDWARE_MODULE_NAME, value)])
        # RFC 5280 §4.2.1.6: with an empty subject the SAN is the identity and must be critical
        builder = builder.add_extension(san, critical=not subject)
    if profile.policies:
        infos = [x509.PolicyInformation(ObjectIdentifier(p), None) for p in profile.policies]
        builder = builder.add_extension(x509.CertificatePolicies(infos), critical=True)
    if profile.client_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    """`csr` as PEM, what the CA's portal or e-mail expects."""
    return csr.public_bytes(serialization.Encoding.PEM)


def hardware_module(csr: x509.CertificateSigningRequest) -> tuple[str, bytes] | None:
    """The (hwType OID, hwSerialNum) asked for in `csr`, if any (for tests and `identity status`)."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == HARDWARE_MODULE_NAME:
            return _parse_hardware_module(other.value)
    return None


def _oid(dotted: str, what: str) -> ObjectIdentifier:
    try:
        oid = ObjectIdentifier(dotted)
    except ValueError:
        raise ValueError(f"{what} {dotted!r}: expected a dotted OID like 1.3.6.1.4.1.99999.1") from None
    return oid


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _der_sequence(body: bytes) -> bytes:
    return _der(0x30, body)


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in _oid(dotted, "OID").dotted_string.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _parse_hardware_module(value: bytes) -> tuple[str, bytes]:
    """Decode HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }."""
    body, _ = _tlv(value, 0x30)
    oid_body, rest = _tlv(body, 0x06)
    serial, _ = _tlv(rest, 0x04)
    arcs: list[int] = []
    acc = 0
    for byte in oid_body:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    first = min(arcs[0] // 40, 2)
    dotted = ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
    return dotted, serial


def _tlv(data: bytes, tag: int) -> tuple[bytes, bytes]:
    if len(data) < 2 or data[0] != tag:
        raise ValueError(f"expected DER tag {tag:#x}")
    n, pos = data[1], 2
    if n & 0x80:
        count = n & 0x7F
        n, pos = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    return data[pos : pos + n], data[pos + n :]
