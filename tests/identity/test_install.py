"""`identity install`: our key, in date, chained to the configured root; else refused, nothing changed."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from app.identity import CertificateRefused, CsrProfile, IdentityStore, NoIdentity
from app.identity.csr import HARDWARE_MODULE_NAME
from app.sep.identity import lfdi_from_der, load_cert_identity
from tests.identity.conftest import DAY, NOW, Ca, pem


def _installed(store: IdentityStore, intermediate: Ca) -> x509.Certificate:
    pending = store.prepare(CsrProfile())
    cert = intermediate.sign_csr(pending.csr)
    store.install(pem(cert), pem(intermediate.cert))
    return cert


def _snapshot(store: IdentityStore) -> dict[str, object]:
    return {
        p.name: os.readlink(p) if p.is_symlink() else sorted(q.name for q in p.iterdir())
        for p in store.root.iterdir()
        if not p.name.startswith(".")
    }


def test_install_makes_the_certificate_current(store: IdentityStore, intermediate: Ca) -> None:
    with pytest.raises(NoIdentity, match="identity init"):
        store.current()
    pending = store.prepare(CsrProfile())
    cert = intermediate.sign_csr(pending.csr)
    files = store.install(pem(cert), pem(intermediate.cert))
    der = cert.public_bytes(serialization.Encoding.DER)
    assert files.identity.lfdi == lfdi_from_der(der)
    assert files == store.current()
    assert store.pending() is None
    assert not store.on_trial()  # nothing to fall back to on the first install
    # TLS presents our certificate and the intermediate, not the root
    assert x509.load_pem_x509_certificates(files.cert.read_bytes()) == [cert, intermediate.cert]
    assert files.key.samefile(pending.key.parent.parent / files.generation / "key.pem")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    # the path the configuration names resolves to the same files
    assert load_cert_identity(store.root / "current" / "cert.pem") == files.identity


def test_chain_in_the_same_file_and_der_are_accepted(store: IdentityStore, intermediate: Ca) -> None:
    pending = store.prepare(CsrProfile())
    cert = intermediate.sign_csr(pending.csr)
    store.install(pem(cert, intermediate.cert))
    again = intermediate.issue(cert.public_key())  # type: ignore[arg-type]
    files = store.install(again.public_bytes(serialization.Encoding.DER), pem(intermediate.cert))
    assert files.identity.lfdi == lfdi_from_der(again.public_bytes(serialization.Encoding.DER))


def test_renewal_for_the_key_in_use_hard_links_it(store: IdentityStore, intermediate: Ca) -> None:
    cert = _installed(store, intermediate)
    before = store.current()
    renewed = intermediate.issue(cert.public_key(), not_after=NOW + 700 * DAY)  # type: ignore[arg-type]
    after = store.install(pem(renewed), pem(intermediate.cert))
    assert after.generation != before.generation
    assert after.key.stat().st_ino == before.key.stat().st_ino  # one key, two names, no copy
    assert store.on_trial()
    assert store.previous() == before


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong key", "another key"),
        ("expired", "expired on"),
        ("not yet valid", "clock"),
        ("no intermediate", "give the CA's intermediates as CHAIN"),
        ("foreign root", 'leads to the root "CN=Somebody Else\'s CA", not the configured one'),
        ("leaf as intermediate", "basicConstraints.cA must be asserted"),
        ("garbage", "not a PEM or DER"),
    ],
)
def test_bad_certificates_are_refused_and_nothing_changes(
    store: IdentityStore, intermediate: Ca, stranger: Ca, case: str, words: str
) -> None:
    _installed(store, intermediate)
    before, layout = store.current(), _snapshot(store)
    pending = store.prepare(CsrProfile())
    layout = _snapshot(store)
    public = x509.load_pem_x509_csr(pending.csr.read_bytes()).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    chain = pem(intermediate.cert)
    if case == "wrong key":
        data = pem(intermediate.issue(ec.generate_private_key(ec.SECP256R1()).public_key()))
    elif case == "expired":
        data = pem(intermediate.issue(public, not_before=NOW - 60 * DAY, not_after=NOW - DAY))
    elif case == "not yet valid":
        data = pem(intermediate.issue(public, not_before=NOW + DAY))
    elif case == "no intermediate":
        data, chain = pem(intermediate.issue(public)), b""
    elif case == "foreign root":
        data, chain = pem(stranger.issue(public)), pem(stranger.cert)
    elif case == "leaf as intermediate":
        fake = intermediate.sub_ca("Not A CA", is_ca=False)
        data, chain = pem(fake.issue(public)), pem(fake.cert, intermediate.cert)
    else:
        data = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateRefused, match=words) as err:
        store.install(data, chain)
    assert "\n" not in str(err.value)
    assert store.current() == before
    assert _snapshot(store) == layout
    assert store.pending() == pending


def test_expired_intermediate_is_refused(store: IdentityStore, root: Ca) -> None:
    old_ca = root.sub_ca("Old MICA")
    pending = store.prepare(CsrProfile())
    cert = old_ca.sign_csr(pending.csr)
    later = NOW + 4000 * DAY  # past the intermediate's end, which the leaf's own dates ignore

    def clock() -> dt.datetime:
        return later

    future = IdentityStore(store.root, store.ca_file, wall_clock=clock)
    long_cert = old_ca.issue(cert.public_key(), not_after=NOW + 5000 * DAY)  # type: ignore[arg-type]
    with pytest.raises(CertificateRefused, match="does not verify"):
        future.install(pem(long_cert), pem(old_ca.cert))


def test_unreadable_root_is_refused(tmp_path: Path, intermediate: Ca) -> None:
    (tmp_path / "state").mkdir()
    store = IdentityStore(tmp_path / "state" / "identity", tmp_path / "missing.pem")
    pending = store.prepare(CsrProfile())
    with pytest.raises(CertificateRefused, match=r"cannot read the 2030\.5 root"):
        store.install(pem(intermediate.sign_csr(pending.csr)), pem(intermediate.cert))


def test_external_configuration_is_served_as_is(tmp_path: Path, ca_file: Path, intermediate: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_file, key_file = tmp_path / "client.crt", tmp_path / "client.key"
    cert_file.write_bytes(pem(intermediate.issue(key.public_key())))
    key_file.write_bytes(b"(key)")
    store = IdentityStore(tmp_path / "identity", ca_file, external=(cert_file, key_file))
    files = store.current()
    assert not store.managed and files.generation is None
    assert (files.cert, files.key) == (cert_file, key_file)
    assert not store.changed(files)
    cert_file.write_bytes(pem(intermediate.issue(key.public_key())) + b"\n")
    assert store.changed(files)


def test_long_chain_in_any_order_with_the_root_included(store: IdentityStore, root: Ca) -> None:
    mca = root.sub_ca("Test MCA")
    mica = mca.sub_ca("Test MICA 2")
    pending = store.prepare(CsrProfile())
    cert = mica.sign_csr(pending.csr)
    files = store.install(pem(cert), pem(root.cert, mca.cert, mica.cert))
    # presented as TLS wants it: ours, then each issuer in turn, without the root
    assert x509.load_pem_x509_certificates(files.cert.read_bytes()) == [cert, mica.cert, mca.cert]


def test_2030_5_device_profile_is_accepted(store: IdentityStore, intermediate: Ca) -> None:
    """Empty subject, critical hardwareModuleName and certificatePolicies, no expiry (2030.5 §6.11)."""
    pending = store.prepare(CsrProfile(subject="", hardware_module=("1.3.6.1.4.1.99999.1", "WS-9")))
    csr = x509.load_pem_x509_csr(pending.csr.read_bytes())
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and san.value.get_values_for_type(x509.OtherName)[0].type_id == HARDWARE_MODULE_NAME
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(intermediate.cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))
        .add_extension(san.value, critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, True, False, False, False, False), critical=True
        )
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(ObjectIdentifier("1.3.6.1.4.1.40732.1.1"), None)]
            ),
            critical=True,
        )
        .sign(intermediate.key, hashes.SHA256())
    )
    files = store.install(pem(cert), pem(intermediate.cert))
    assert files.identity.subject == ""
    assert files.identity.not_after.year == 9999
