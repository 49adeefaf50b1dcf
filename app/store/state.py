"""A small durable key/value table: what the gateway must remember across restarts (DERStatus phase)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.store.database import Store


class StateTable:
    """String values by string key; every write is committed at once (they are rare)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        rows = self._store.query("SELECT value FROM state WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set(self, key: str, value: str) -> None:
        """Store `value` under `key` durably (also commits anything staged with it)."""
        if self.get(key) == value:
            return  # an unchanged value costs no write
        self._store.write([("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))])

    def stage(self, key: str, value: str) -> None:
        """Store `value` under `key` in the open transaction, made durable by the next commit (a
        rollback loses it: stage only what may be lost)."""
        self._store.begin()
        self._store.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def delete(self, key: str) -> None:
        """Forget `key`."""
        if self.get(key) is None:
            return
        self._store.write([("DELETE FROM state WHERE key = ?", (key,))])
