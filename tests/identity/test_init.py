"""`identity init`: a P-256 key born 0600 in the state folder, never overwritten, never logged."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.cli import main
from app.identity import CsrProfile, IdentityStore, KeyExists
from app.identity import files as identity_files
from tests.identity.conftest import Ca, pem


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_prepare_creates_private_p256_key_and_csr(store: IdentityStore) -> None:
    pending = store.prepare(CsrProfile())
    assert pending.key.parent == store.root / pending.generation
    assert _mode(pending.key) == 0o600
    assert _mode(store.root) == 0o700
    assert _mode(pending.key.parent) == 0o700
    assert pending.key.stat().st_uid == os.geteuid()
    key = serialization.load_pem_private_key(pending.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert pending.csr.read_bytes().startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    assert store.pending() == pending


def test_key_file_is_private_even_with_a_permissive_umask(store: IdentityStore) -> None:
    old = os.umask(0)
    try:
        pending = store.prepare(CsrProfile())
    finally:
        os.umask(old)
    assert _mode(pending.key) == 0o600


def test_rerun_never_overwrites_a_prepared_key(store: IdentityStore) -> None:
    first = store.prepare(CsrProfile())
    before = first.key.read_bytes()
    with pytest.raises(KeyExists, match="--force"):
        store.prepare(CsrProfile())
    assert first.key.read_bytes() == before
    assert store.pending() == first


def test_force_replaces_only_the_prepared_key_never_the_one_in_use(
    store: IdentityStore, intermediate: Ca
) -> None:
    first = store.prepare(CsrProfile())
    store.install(pem(intermediate.sign_csr(first.csr), intermediate.cert))
    in_use = store.current()
    key_in_use = in_use.key.read_bytes()
    # with an identity in force, init prepares a second key for rotation instead of refusing
    second = store.prepare(CsrProfile())
    second_key = second.key.read_bytes()
    third = store.prepare(CsrProfile(), replace_pending=True)
    assert third.key.read_bytes() != second_key
    assert not second.key.exists()
    assert store.current() == in_use
    assert in_use.key.read_bytes() == key_in_use


def test_write_new_refuses_an_existing_file_or_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"x")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(FileExistsError):
        identity_files.write_new(tmp_path / "link", b"secret", mode=0o600)
    assert target.read_bytes() == b"x"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act for the service user")
def test_run_as_root_the_files_belong_to_the_service_user(
    tmp_path: Path, ca_file: Path, intermediate: Ca
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 4242, 4243)  # what systemd's StateDirectory= does for the service user
    store = IdentityStore(state / "identity", ca_file)
    pending = store.prepare(CsrProfile())
    for path in (store.root, pending.key.parent, pending.key, pending.csr, store.root / ".lock"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4243), path
    files = store.install(pem(intermediate.sign_csr(pending.csr), intermediate.cert))
    for path in (files.cert.parent, files.cert, files.key, files.cert.parent / "chain.pem"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4243), path
    assert os.lstat(store.root / "current").st_uid == 4242


def test_key_never_appears_in_logs(
    store: IdentityStore,
    intermediate: Ca,
    stranger: Ca,
    tmp_path: Path,
    config_file: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    first = store.prepare(CsrProfile())
    keys = [first.key.read_bytes()]
    store.install(pem(intermediate.sign_csr(first.csr), intermediate.cert))
    second = store.prepare(CsrProfile())
    keys.append(second.key.read_bytes())
    store.install(pem(intermediate.sign_csr(second.csr), intermediate.cert))
    store.fall_back()
    again = store.pending()
    assert again is not None
    store.install(pem(intermediate.sign_csr(again.csr), intermediate.cert))
    store.confirm_working()
    bad = tmp_path / "bad.pem"
    bad.write_bytes(pem(stranger.issue(ec.generate_private_key(ec.SECP256R1()).public_key())))
    assert main(["identity", "init", "--config", str(config_file)]) == 0
    keys.append(store.pending().key.read_bytes())  # type: ignore[union-attr]
    assert main(["identity", "install", str(bad), "--config", str(config_file)]) == 1
    assert main(["identity", "status", "--config", str(config_file)]) == 0
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    out = capsys.readouterr()
    text += out.out + out.err
    assert "installed certificate" in text  # the capture works
    for body in keys:
        key = serialization.load_pem_private_key(body, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        secret = key.private_numbers().private_value
        for line in body.decode().splitlines():
            if not line.startswith("-----"):
                assert line not in text
        assert str(secret) not in text
        assert f"{secret:x}" not in text
    assert "PRIVATE KEY" not in text
