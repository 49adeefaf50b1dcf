"""`wattsmart-gateway identity ...`: prepare a key and CSR, install the signed certificate, show the state."""

from __future__ import annotations

import argparse
import sys

from app.config import load_config
from app.identity.errors import IdentityStoreError
from app.identity.expiry import watch_store
from app.identity.status import identity_status
from app.identity.store import CERT, CURRENT, KEY, IdentityStore

_PROG = "wattsmart-gateway identity"


def run(args: argparse.Namespace) -> int:
    """Run one `identity` action; returns the exit status (ConfigError is the caller's)."""
    store = IdentityStore.from_config(load_config(args.config))
    action: str = args.identity_command
    try:
        if action == "init":
            return _init(store, args)
        if action == "install":
            return _install(store, args)
        if action == "status":
            return _status(store)
        if action == "fall-back":
            return _fall_back(store)
    except IdentityStoreError as exc:
        print(f"{_PROG} {action}: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(action)  # argparse only lets known actions through


def _init(store: IdentityStore, args: argparse.Namespace) -> int:
    from app.identity.csr import DEFAULT_SUBJECT, CsrProfile  # brings cryptography: only here

    hw = None
    if args.hardware_module:
        oid, sep, serial = args.hardware_module.partition(":")
        hw = (oid, serial) if sep else (oid, "")
    try:
        profile = CsrProfile(
            DEFAULT_SUBJECT if args.subject is None else args.subject,
            hw,
            tuple(args.policy),
            args.client_auth,
        )
    except ValueError as exc:
        print(f"{_PROG} init: {exc}", file=sys.stderr)
        return 2
    pending = store.prepare(profile, replace_pending=args.force)
    print(f"key: {pending.key} (mode 0600, stays on this box)")
    print(f"CSR: {pending.csr}")
    print("send the CSR to the 2030.5 CA, then run `wattsmart-gateway identity install CERT [CHAIN]`")
    print(pending.csr.read_text(), end="")
    return 0


def _install(store: IdentityStore, args: argparse.Namespace) -> int:
    try:
        cert = args.cert.read_bytes()
        chain = args.chain.read_bytes() if args.chain is not None else b""
    except OSError as exc:
        print(f"{_PROG} install: refused: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        files = store.install(cert, chain)
    except IdentityStoreError as exc:
        print(f"{_PROG} install: refused: {exc}; the identity in force is unchanged", file=sys.stderr)
        return 1
    ident = files.identity
    print(f"LFDI: {ident.lfdi}")
    print(f"SFDI: {ident.sfdi}")
    print(f"subject: {ident.subject}")
    print(f"issuer: {ident.issuer}")
    print(f"valid until: {ident.not_after.isoformat()}")
    if store.on_trial():
        print("the gateway switches on its next connection; the previous identity is kept until it works")
    if not store.managed:
        where = store.root / CURRENT
        print(
            f"note: the configuration uses other files; set server.cert_file: {where / CERT} "
            f"and server.key_file: {where / KEY}"
        )
    return 0


def _status(store: IdentityStore) -> int:
    watch = watch_store(store)
    watch.check(log=False)  # the lines below say it; a log line on stderr would repeat it
    for key, value in identity_status(store, watch).items():
        print(f"{key}: {value}")
    return 1 if watch.error else 0


def _fall_back(store: IdentityStore) -> int:
    if not store.fall_back():
        print(f"{_PROG} fall-back: no previous identity to return to", file=sys.stderr)
        return 1
    print(f"back on {store.current().identity.lfdi}; the new key stays prepared")
    return 0
