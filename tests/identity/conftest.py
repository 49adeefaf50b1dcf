"""A small CA made at test time: root, intermediate and a stranger; and a store wired to trust the root."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.identity import IdentityStore

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


def pem(*certs: x509.Certificate) -> bytes:
    """Certificates as concatenated PEM."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass
class Ca:
    """A signing CA: its certificate and key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def root(cls, name: str) -> Ca:
        """A self-signed root."""
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(_ca_cert(name, key, None), key)

    def sub_ca(self, name: str, *, is_ca: bool = True) -> Ca:
        """An intermediate signed by this CA (`is_ca=False` makes a leaf pretending to be one)."""
        key = ec.generate_private_key(ec.SECP256R1())
        return Ca(_ca_cert(name, key, self, is_ca=is_ca), key)

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        subject: x509.Name | None = None,
        not_before: dt.datetime = NOW - DAY,
        not_after: dt.datetime = NOW + 365 * DAY,
    ) -> x509.Certificate:
        """A device certificate for `public_key`."""
        name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wattsmart-gateway")])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, True, False, False, False, False), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def sign_csr(self, csr_file: Path, **kwargs: dt.datetime) -> x509.Certificate:
        """Issue a certificate for the key in the CSR at `csr_file`."""
        csr = x509.load_pem_x509_csr(csr_file.read_bytes())
        public = csr.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        return self.issue(public, **kwargs)  # type: ignore[arg-type]


def _ca_cert(
    name: str, key: ec.EllipticCurvePrivateKey, parent: Ca | None, *, is_ca: bool = True
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.cert.subject if parent else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 10 * DAY)
        .not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, is_ca, is_ca, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False
        )
    return builder.sign(parent.key if parent else key, hashes.SHA256())


@pytest.fixture(scope="session")
def root() -> Ca:
    """The configured 2030.5 root (SERCA)."""
    return Ca.root("Test SERCA")


@pytest.fixture(scope="session")
def intermediate(root: Ca) -> Ca:
    """The manufacturer's CA under the root, which signs our CSRs."""
    return root.sub_ca("Test MICA")


@pytest.fixture(scope="session")
def stranger() -> Ca:
    """A CA the box does not trust."""
    return Ca.root("Somebody Else's CA")


@pytest.fixture
def ca_file(tmp_path: Path, root: Ca) -> Path:
    """server.ca_file holding the root."""
    path = tmp_path / "serca.pem"
    path.write_bytes(pem(root.cert))
    return path


@pytest.fixture
def store(tmp_path: Path, ca_file: Path) -> IdentityStore:
    """An empty managed store in <tmp>/state/identity."""
    (tmp_path / "state").mkdir()
    return IdentityStore(tmp_path / "state" / "identity", ca_file)


def write_config(folder: Path, state_dir: Path, ca_file: Path, cert: Path | None = None) -> Path:
    """A gateway.yaml whose certificate lives in the managed store (or at `cert`)."""
    current = state_dir / "identity" / "current"
    cert_file = cert or current / "cert.pem"
    key_file = cert.with_suffix(".key") if cert else current / "key.pem"
    path = folder / "gateway.yaml"
    path.write_text(
        "server:\n"
        "  dcap_url: https://127.0.0.1:8443/dcap\n"
        f"  ca_file: {ca_file}\n"
        f"  cert_file: {cert_file}\n"
        f"  key_file: {key_file}\n"
        "inverter:\n"
        "  transport: sim\n"
        f"state_dir: {state_dir}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config_file(tmp_path: Path, store: IdentityStore) -> Path:
    """A configuration using `store`."""
    return write_config(tmp_path, store.root.parent, store.ca_file)
