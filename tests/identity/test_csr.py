"""The CSR: our key, the subject and extensions asked for, no host name."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.identity import CsrProfile, IdentityStore
from app.identity.csr import build_csr, hardware_module, new_key


def _load(
    store: IdentityStore, profile: CsrProfile
) -> tuple[x509.CertificateSigningRequest, ec.EllipticCurvePrivateKey]:
    pending = store.prepare(profile)
    key = serialization.load_pem_private_key(pending.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return x509.load_pem_x509_csr(pending.csr.read_bytes()), key


def test_default_csr(store: IdentityStore) -> None:
    csr, key = _load(store, CsrProfile())
    assert csr.is_signature_valid
    assert csr.public_key() == key.public_key()
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "wattsmart-gateway"
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_agreement
    assert not usage.value.key_cert_sign
    # the 2030.5 device profile identifies hardware, not a host: no DNS name, no EKU unless asked
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


def test_configured_csr(store: IdentityStore) -> None:
    profile = CsrProfile(
        subject="CN=WS-000123,O=Wattsmart,C=AU",
        hardware_module=("1.3.6.1.4.1.99999.1", "WS-000123"),
        policies=("1.3.6.1.4.1.40732.1.1", "1.3.6.1.4.1.40732.2.2"),
        client_auth=True,
    )
    csr, _ = _load(store, profile)
    assert csr.subject.rfc4514_string() == "CN=WS-000123,O=Wattsmart,C=AU"
    assert hardware_module(csr) == ("1.3.6.1.4.1.99999.1", b"WS-000123")
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    policies = csr.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == list(profile.policies)
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_empty_subject_makes_the_hardware_name_critical() -> None:
    long_serial = "S" * 200  # long-form DER lengths
    csr = build_csr(new_key(), CsrProfile(subject="", hardware_module=("2.999.7", long_serial)))
    assert csr.subject == x509.Name([])
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert hardware_module(csr) == ("2.999.7", long_serial.encode())


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"subject": "not a name"}, "RFC 4514"),
        ({"hardware_module": ("serial", "x")}, "dotted OID"),
        ({"hardware_module": ("1.2.3", "")}, "serial"),
        ({"policies": ("any",)}, "certificate policy"),
    ],
)
def test_bad_profile_is_refused_with_what_was_expected(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        CsrProfile(**kwargs)  # type: ignore[arg-type]
