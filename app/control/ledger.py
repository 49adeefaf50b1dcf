"""The control engine's durable memory in the gateway's one store: event records, owed responses, default.

Written only when something changes (a new event, a milestone, a delivered response): a few
small transactions per event, which an SD card can take for years. The store may be unavailable
(full disk) or rebuilt (a damaged file): methods then raise `StoreUnavailable`, and the engine
keeps steering the battery from what it holds in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.control.schedule import DueResponse, EventRecord
from app.sep.codec import parse, to_xml
from app.sep.der import DefaultDERControl
from app.sep.exceptions import SepParseError
from app.store import Store, open_store
from app.store.database import FILENAME
from app.store.legacy import DEFAULT_KEY

_LOGGER = logging.getLogger(__name__)

FILE_NAME: Final = FILENAME


@dataclass(frozen=True, slots=True)
class OwedResponse:
    """A response recorded as due and not yet delivered."""

    id: int
    mrid: str
    status: int
    reply_to: str
    created: float


class Ledger:
    """The control tables of the store in the state folder, used from the event loop's thread."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self.path = state_dir / FILE_NAME
        self._store: Store | None = None

    def _db(self) -> Store:
        """The store, opened on first use (raises StoreUnavailable while it cannot be)."""
        if self._store is None:
            self._store = open_store(self._state_dir)
        return self._store

    @property
    def generation(self) -> int:
        """Changes when the store was rebuilt: the engine then saves again what it holds."""
        return self._db().generation

    def close(self) -> None:
        """Let go of the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def records(self) -> dict[str, EventRecord]:
        """Every event record, by mRID."""
        rows = self._db().query(
            "SELECT mrid, first_seen, start_offset, duration_offset, reached, stop_at FROM control_event"
        )
        return {
            mrid: EventRecord(mrid, seen, start, duration, _codes(reached), stop)
            for mrid, seen, start, duration, reached, stop in rows
        }

    def commit(self, records: Sequence[EventRecord], responses: Sequence[DueResponse]) -> None:
        """Store changed records and newly owed responses in one transaction (both or neither)."""
        if not records and not responses:
            return
        statements: list[tuple[str, tuple[object, ...]]] = [
            (
                "INSERT OR REPLACE INTO control_event VALUES (?, ?, ?, ?, ?, ?)",
                (r.mrid, r.first_seen, r.start_offset, r.duration_offset, _text(r.reached), r.stop_at),
            )
            for r in records
        ]
        # UNIQUE(mrid, status) makes a repeated milestone a no-op: each response is owed once.
        statements += [
            (
                "INSERT OR IGNORE INTO control_response (mrid, status, reply_to, created)"
                " VALUES (?, ?, ?, ?)",
                (r.mrid, r.status, r.reply_to, r.created),
            )
            for r in responses
        ]
        self._db().write(statements)

    def owed(self) -> list[OwedResponse]:
        """Undelivered responses, oldest first."""
        rows = self._db().query(
            "SELECT id, mrid, status, reply_to, created FROM control_response ORDER BY id"
        )
        return [OwedResponse(*row) for row in rows]

    def delivered(self, response: OwedResponse) -> None:
        """The server took it: never send it again."""
        self._db().write([("DELETE FROM control_response WHERE id = ?", (response.id,))])

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
            self._db().write([("DELETE FROM control_event WHERE mrid = ?", (m,)) for m in gone])
        return len(gone)

    def save_default(self, default: DefaultDERControl | None) -> None:
        """Remember the DefaultDERControl in force, for the fail-safe after a restart."""
        if default is None:
            self._db().state.delete(DEFAULT_KEY)
        else:
            self._db().state.set(DEFAULT_KEY, to_xml(default).decode("utf-8"))

    def last_default(self) -> DefaultDERControl | None:
        """The DefaultDERControl saved last, or None."""
        value = self._db().state.get(DEFAULT_KEY)
        if value is None:
            return None
        try:
            return parse(DefaultDERControl, value.encode("utf-8"))
        except SepParseError as exc:
            _LOGGER.warning("saved default control unreadable, ignored: %s", exc)
            return None


def _text(codes: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(codes))


def _codes(text: str) -> frozenset[int]:
    return frozenset(int(c) for c in text.split(",") if c)
