"""The command line: identity init / install / status / fall-back, and id --qr."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from app.cli import main
from app.identity import IdentityStore
from app.identity.csr import hardware_module
from app.sep.identity import load_cert_identity
from tests.identity.conftest import Ca, pem, write_config


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_init_install_status(
    store: IdentityStore,
    intermediate: Ca,
    config_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(
        capsys,
        "identity",
        "init",
        "--config",
        str(config_file),
        "--subject",
        "CN=WS-7,O=Wattsmart",
        "--hardware-module",
        "1.3.6.1.4.1.99999.1:WS-7",
        "--policy",
        "1.3.6.1.4.1.40732.1.1",
    )
    assert code == 0
    assert "BEGIN CERTIFICATE REQUEST" in out and "mode 0600" in out
    csr = x509.load_pem_x509_csr(out[out.index("-----BEGIN") :].encode())
    assert csr.subject.rfc4514_string() == "CN=WS-7,O=Wattsmart"
    assert hardware_module(csr) == ("1.3.6.1.4.1.99999.1", b"WS-7")

    code, _, err = _run(capsys, "identity", "init", "--config", str(config_file))
    assert code == 1 and "--force" in err and err.count("\n") == 1

    pending = store.pending()
    assert pending is not None
    cert_file, chain_file = tmp_path / "signed.pem", tmp_path / "chain.pem"
    cert_file.write_bytes(pem(intermediate.sign_csr(pending.csr)))
    chain_file.write_bytes(pem(intermediate.cert))
    code, out, _ = _run(
        capsys, "identity", "install", str(cert_file), str(chain_file), "--config", str(config_file)
    )
    assert code == 0
    ident = load_cert_identity(cert_file)
    assert f"LFDI: {ident.lfdi}\nSFDI: {ident.sfdi}\n" in out

    code, out, _ = _run(capsys, "id", "--config", str(config_file))
    assert code == 0 and f"SFDI: {ident.sfdi}" in out and "issuer: CN=Test MICA" in out

    code, out, _ = _run(capsys, "identity", "status", "--config", str(config_file))
    assert code == 0 and f"LFDI: {ident.lfdi}" in out and "client certificate: valid until" in out


def test_refusal_is_one_line_and_keeps_the_identity(
    store: IdentityStore,
    intermediate: Ca,
    config_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _run(capsys, "identity", "init", "--config", str(config_file))
    stranger_cert = tmp_path / "wrong.pem"
    stranger_cert.write_bytes(pem(intermediate.issue(ec.generate_private_key(ec.SECP256R1()).public_key())))
    code, out, err = _run(capsys, "identity", "install", str(stranger_cert), "--config", str(config_file))
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("wattsmart-gateway identity install: refused: the certificate is for another key")
    assert err.rstrip().endswith("the identity in force is unchanged")
    code, _, err = _run(
        capsys, "identity", "install", str(tmp_path / "nope.pem"), "--config", str(config_file)
    )
    assert code == 1 and "cannot read" in err and err.count("\n") == 1


def test_fall_back_command(
    store: IdentityStore, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "identity", "fall-back", "--config", str(config_file))
    assert code == 1 and "no previous identity" in err


def test_install_with_external_config_says_where_to_point_it(
    store: IdentityStore, intermediate: Ca, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store.root.parent, store.ca_file, cert=tmp_path / "client.crt")
    _run(capsys, "identity", "init", "--config", str(config))
    pending = store.pending()
    assert pending is not None
    signed = tmp_path / "signed.pem"
    signed.write_bytes(pem(intermediate.sign_csr(pending.csr), intermediate.cert))
    code, out, _ = _run(capsys, "identity", "install", str(signed), "--config", str(config))
    assert code == 0 and "set server.cert_file:" in out and "current/cert.pem" in out


def test_id_qr(intermediate: Ca, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "client.pem"
    cert.write_bytes(pem(intermediate.issue(ec.generate_private_key(ec.SECP256R1()).public_key())))
    code, out, _ = _run(capsys, "id", "--cert", str(cert), "--qr")
    assert code == 0
    ident = load_cert_identity(cert)
    text_lines, qr_lines = out.splitlines()[:5], out.splitlines()[5:]
    assert text_lines[1] == f"SFDI: {ident.sfdi}"
    assert len(qr_lines) > 10
    assert set("".join(qr_lines)) <= {"█", "▀", "▄", " ", "\xa0"}
    assert len({len(line) for line in qr_lines}) == 1  # a square block, nothing else mixed in


def test_qr_payload_decodes_to_the_identity(intermediate: Ca, tmp_path: Path) -> None:
    from app.identity.qr import qr_payload

    cert = tmp_path / "client.pem"
    cert.write_bytes(pem(intermediate.issue(ec.generate_private_key(ec.SECP256R1()).public_key())))
    ident = load_cert_identity(cert)
    assert qr_payload(ident) == f"SFDI:{ident.sfdi} LFDI:{ident.lfdi.upper()}"
