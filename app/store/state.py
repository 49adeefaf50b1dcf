"""A small durable key/value table: what the gateway must remember across restarts (e.g. MUP hrefs)."""

from __future__ import annotations

import sqlite3


class StateTable:
    """String values by string key; every write is committed at once (they are rare)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        """Store `value` under `key` durably (also commits anything staged with it)."""
        if self.get(key) == value:
            return  # an unchanged value costs no write
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN")
        self._conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))
        self._conn.execute("COMMIT")

    def delete(self, key: str) -> None:
        """Forget `key`."""
        if self.get(key) is None:
            return
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN")
        self._conn.execute("DELETE FROM state WHERE key = ?", (key,))
        self._conn.execute("COMMIT")
