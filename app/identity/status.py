"""The identity section of the status page and `check`: who we are, rotation state, expiry."""

from __future__ import annotations

from typing import Any

from app.identity.errors import IdentityStoreError
from app.identity.expiry import ExpiryWatch
from app.identity.store import IdentityStore


def identity_status(store: IdentityStore, watch: ExpiryWatch | None = None) -> dict[str, Any]:
    """A flat mapping (no secrets) for the status page's "identity" section."""
    out: dict[str, Any] = {}
    try:
        files = store.current()
    except IdentityStoreError as exc:
        out["certificate"] = str(exc)
    else:
        ident = files.identity
        out.update(
            LFDI=ident.lfdi,
            SFDI=ident.sfdi,
            subject=ident.subject,
            issuer=ident.issuer,
            expires=f"{ident.not_after:%Y-%m-%d %H:%M} UTC",
        )
    out["rotation"] = _rotation(store)
    if watch is not None:
        out.update(watch.status())
        out["attention"] = watch.attention
    return out


def _rotation(store: IdentityStore) -> str:
    if not store.managed:
        return f"not managed (server.cert_file is outside {store.root})"
    parts = []
    if store.on_trial():
        parts.append("new certificate on trial; previous identity kept until the server accepts it")
    pending = store.pending()
    if pending is not None:
        parts.append(f"new key prepared, waiting for its certificate (CSR {pending.csr})")
    return "; ".join(parts) or "—"
