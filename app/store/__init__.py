"""Durable state that must survive a restart or a power cut: one sqlite file in the state directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.store.errors import StoreCorrupt, StoreFull, StoreUnavailable

if TYPE_CHECKING:
    from app.store.database import Store, open_store
    from app.store.outbox import Outbox
    from app.store.state import StateTable

__all__ = [
    "Outbox",
    "StateTable",
    "Store",
    "StoreCorrupt",
    "StoreFull",
    "StoreUnavailable",
    "open_store",
]


def __getattr__(name: str) -> object:
    """The database parts on first use: `app.store.files` alone must not load sqlite3."""
    if name in ("Store", "open_store"):
        from app.store import database

        return getattr(database, name)
    if name == "Outbox":
        from app.store.outbox import Outbox

        return Outbox
    if name == "StateTable":
        from app.store.state import StateTable

        return StateTable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
