"""The control engine's durable memory (stdlib sqlite3): event records, owed responses, last default.

Written only when something changes (a new event, a milestone, a delivered response): a few
small transactions per event, which an SD card can take for years. WAL with synchronous=FULL so
a power cut loses nothing that was committed, and never corrupts the file.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.control.schedule import DueResponse, EventRecord
from app.sep.codec import parse, to_xml
from app.sep.der import DefaultDERControl
from app.sep.exceptions import SepParseError

_LOGGER = logging.getLogger(__name__)

FILE_NAME: Final = "control.sqlite3"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS event (
    mrid TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    start_offset REAL NOT NULL,
    duration_offset REAL NOT NULL,
    reached TEXT NOT NULL,
    stop_at REAL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mrid TEXT NOT NULL,
    status INTEGER NOT NULL,
    reply_to TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (mrid, status)
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
_DEFAULT_KEY: Final = "default_der_control"


@dataclass(frozen=True, slots=True)
class OwedResponse:
    """A response recorded as due and not yet delivered."""

    id: int
    mrid: str
    status: int
    reply_to: str
    created: float


class Ledger:
    """The sqlite file under the state folder; one connection, used from the event loop's thread."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / FILE_NAME
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def records(self) -> dict[str, EventRecord]:
        """Every event record, by mRID."""
        rows = self._db.execute(
            "SELECT mrid, first_seen, start_offset, duration_offset, reached, stop_at FROM event"
        )
        return {
            mrid: EventRecord(mrid, seen, start, duration, _codes(reached), stop)
            for mrid, seen, start, duration, reached, stop in rows
        }

    def commit(self, records: Sequence[EventRecord], responses: Sequence[DueResponse]) -> None:
        """Store changed records and newly owed responses in one transaction (both or neither)."""
        if not records and not responses:
            return
        with _transaction(self._db):
            self._db.executemany(
                "INSERT OR REPLACE INTO event VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.mrid, r.first_seen, r.start_offset, r.duration_offset, _text(r.reached), r.stop_at)
                    for r in records
                ],
            )
            # UNIQUE(mrid, status) makes a repeated milestone a no-op: each response is owed once.
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (mrid, status, reply_to, created) VALUES (?, ?, ?, ?)",
                [(r.mrid, r.status, r.reply_to, r.created) for r in responses],
            )

    def owed(self) -> list[OwedResponse]:
        """Undelivered responses, oldest first."""
        rows = self._db.execute("SELECT id, mrid, status, reply_to, created FROM outbox ORDER BY id")
        return [OwedResponse(*row) for row in rows]

    def delivered(self, response: OwedResponse) -> None:
        """The server took it: never send it again."""
        with _transaction(self._db):
            self._db.execute("DELETE FROM outbox WHERE id = ?", (response.id,))

    def prune(self, keep: Iterable[str], before: float) -> int:
        """Forget finished events first seen before `before` that the server no longer lists."""
        keep_set = set(keep)
        owed = {r.mrid for r in self.owed()}
        gone = [
            r.mrid
            for r in self.records().values()
            if r.terminal is not None and r.first_seen < before and r.mrid not in keep_set | owed
        ]
        if gone:
            with _transaction(self._db):
                self._db.executemany("DELETE FROM event WHERE mrid = ?", [(m,) for m in gone])
        return len(gone)

    def save_default(self, default: DefaultDERControl | None) -> None:
        """Remember the DefaultDERControl in force, for the fail-safe after a restart."""
        with _transaction(self._db):
            if default is None:
                self._db.execute("DELETE FROM kv WHERE key = ?", (_DEFAULT_KEY,))
            else:
                self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (_DEFAULT_KEY, to_xml(default)))

    def last_default(self) -> DefaultDERControl | None:
        """The DefaultDERControl saved last, or None."""
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (_DEFAULT_KEY,)).fetchone()
        if row is None:
            return None
        try:
            return parse(DefaultDERControl, bytes(row[0]))
        except SepParseError as exc:
            _LOGGER.warning("saved default control unreadable, ignored: %s", exc)
            return None


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit mode)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _text(codes: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(codes))


def _codes(text: str) -> frozenset[int]:
    return frozenset(int(c) for c in text.split(",") if c)
