"""Durable state that must survive a restart or a power cut: one sqlite file in the state directory."""

from __future__ import annotations

from app.store.database import Store, open_store
from app.store.errors import StoreCorrupt, StoreFull, StoreUnavailable
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
