"""Bring the control ledger of the old layout (its own control.sqlite3) into the one store, once."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Final

from app.store.quarantine import quarantine

if TYPE_CHECKING:
    from app.store.database import Store

_LOGGER = logging.getLogger(__name__)

#: the control engine's own database before it moved into the store
OLD_LEDGER: Final = "control.sqlite3"
#: the state-table key the DefaultDERControl in force is kept under (its 2030.5 XML)
DEFAULT_KEY: Final = "control:default"


def import_old_ledger(store: Store) -> None:
    """Copy events, owed responses and the saved default from `control.sqlite3`, then remove it.

    A damaged old file is quarantined instead (the cost: at worst a response sent twice).
    """
    old = store.path.parent / OLD_LEDGER
    if not old.exists():
        return
    try:
        events, owed, default = _read(old)
    except sqlite3.DatabaseError as exc:
        kept = quarantine(old)
        _LOGGER.error("old control ledger %s unreadable (%s); kept as %s, not migrated", old, exc, kept)
        return
    statements: list[tuple[str, tuple[object, ...]]] = [
        ("INSERT OR REPLACE INTO control_event VALUES (?, ?, ?, ?, ?, ?)", tuple(row)) for row in events
    ]
    statements += [
        (
            "INSERT OR IGNORE INTO control_response (mrid, status, reply_to, created) VALUES (?, ?, ?, ?)",
            tuple(row),
        )
        for row in owed
    ]
    if default is not None:
        statements.append(("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (DEFAULT_KEY, default)))
    store.write(statements)
    for suffix in ("", "-wal", "-shm"):
        old.with_name(old.name + suffix).unlink(missing_ok=True)
    _LOGGER.warning(
        "control ledger migrated from %s into %s: %d event(s), %d owed response(s)%s",
        old.name,
        store.path.name,
        len(events),
        len(owed),
        ", the default control" if default is not None else "",
    )


def _read(old: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], str | None]:
    conn = sqlite3.connect(old, isolation_level=None)
    try:
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        events = owed = []
        default = None
        if "event" in tables:
            events = conn.execute(
                "SELECT mrid, first_seen, start_offset, duration_offset, reached, stop_at FROM event"
            ).fetchall()
        if "outbox" in tables:
            owed = conn.execute("SELECT mrid, status, reply_to, created FROM outbox ORDER BY id").fetchall()
        if "kv" in tables:
            row = conn.execute("SELECT value FROM kv WHERE key = 'default_der_control'").fetchone()
            if row is not None:
                value = row[0]
                default = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        return events, owed, default
    finally:
        conn.close()
