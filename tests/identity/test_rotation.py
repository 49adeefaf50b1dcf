"""Rotation: a new key beside the one in use, switch on install, previous kept until confirmed."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from app.identity import CsrProfile, IdentityStore
from tests.identity.conftest import Ca, pem


def _first(store: IdentityStore, intermediate: Ca) -> None:
    pending = store.prepare(CsrProfile())
    store.install(pem(intermediate.sign_csr(pending.csr), intermediate.cert))


def _generations(store: IdentityStore) -> set[str]:
    return {p.name for p in store.root.glob("gen-*")}


def test_prepare_while_in_use_then_switch_on_install(store: IdentityStore, intermediate: Ca) -> None:
    _first(store, intermediate)
    old = store.current()
    pending = store.prepare(CsrProfile())
    assert store.current() == old  # preparing changes nothing in force
    assert not store.changed(old)
    new = store.install(pem(intermediate.sign_csr(pending.csr), intermediate.cert))
    assert store.changed(old) and not store.changed(new)
    assert store.current() == new and new.identity.lfdi != old.identity.lfdi
    assert store.on_trial() and store.previous() == old
    assert store.pending() is None
    assert _generations(store) == {old.generation, new.generation}


def test_confirm_retires_the_previous_identity(store: IdentityStore, intermediate: Ca) -> None:
    _first(store, intermediate)
    old = store.current()
    pending = store.prepare(CsrProfile())
    new = store.install(pem(intermediate.sign_csr(pending.csr), intermediate.cert))
    assert store.confirm_working()
    assert not store.on_trial()
    assert not old.key.exists()  # the retired key is gone from the box
    assert _generations(store) == {new.generation}
    assert not store.confirm_working()  # idle: nothing to do, cheap
    assert not store.fall_back()  # and nothing to fall back to any more


def test_fall_back_restores_the_previous_and_keeps_the_new_key_pending(
    store: IdentityStore, intermediate: Ca
) -> None:
    _first(store, intermediate)
    old = store.current()
    pending = store.prepare(CsrProfile())
    csr = pending.csr.read_bytes()
    bad = store.install(pem(intermediate.sign_csr(pending.csr), intermediate.cert))
    assert store.fall_back()
    assert store.current() == old
    assert store.changed(bad)
    assert not store.on_trial()
    again = store.pending()
    assert again is not None and again.csr.read_bytes() == csr
    # a corrected certificate for the same key can be installed without a new init
    fixed = store.install(pem(intermediate.sign_csr(again.csr), intermediate.cert))
    assert fixed.identity.lfdi != bad.identity.lfdi
    assert store.previous() == old


def test_reinstall_while_on_trial_keeps_the_last_confirmed_identity(
    store: IdentityStore, intermediate: Ca
) -> None:
    _first(store, intermediate)
    good = store.current()
    pending = store.prepare(CsrProfile())
    trial = store.install(pem(intermediate.sign_csr(pending.csr), intermediate.cert))
    trial_key = x509.load_pem_x509_certificate(trial.cert.read_bytes()).public_key()
    assert isinstance(trial_key, ec.EllipticCurvePublicKey)
    second = store.install(pem(intermediate.issue(trial_key), intermediate.cert))
    assert store.previous() == good  # never an unconfirmed identity
    assert trial.generation not in _generations(store)
    assert store.fall_back()
    assert store.current() == good
    again = store.pending()
    assert again is not None and again.generation == second.generation


def test_first_identity_has_nothing_to_fall_back_to(store: IdentityStore, intermediate: Ca) -> None:
    _first(store, intermediate)
    assert not store.on_trial()
    assert not store.fall_back()
    assert not store.confirm_working()


def test_interrupted_write_is_cleaned_up(store: IdentityStore, intermediate: Ca) -> None:
    _first(store, intermediate)
    leftover = store.root / ".new-deadbeef"
    leftover.mkdir()
    (leftover / "key.pem").write_bytes(b"half")
    store.prepare(CsrProfile())
    assert not leftover.exists()


def test_confirm_and_fall_back_only_act_on_the_identity_tried(store: IdentityStore, intermediate: Ca) -> None:
    _first(store, intermediate)
    good = store.current()
    tried = store.install(pem(intermediate.sign_csr(store.prepare(CsrProfile()).csr), intermediate.cert))
    # the operator installs yet another certificate while the session is still trying the last one
    newest = store.install(pem(intermediate.sign_csr(store.prepare(CsrProfile()).csr), intermediate.cert))
    assert not store.confirm_working(tried)
    assert not store.fall_back(tried)
    assert store.current() == newest and store.previous() == good
    assert store.confirm_working(newest)


def test_installing_the_same_certificate_again_changes_nothing(
    store: IdentityStore, intermediate: Ca
) -> None:
    pending = store.prepare(CsrProfile())
    data = pem(intermediate.sign_csr(pending.csr), intermediate.cert)
    first = store.install(data)
    assert store.install(data) == first
    assert not store.on_trial()
