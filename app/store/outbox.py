"""The durable outbox of 30-s readings: staged with the tick, deleted once the server has taken them."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping


class Outbox:
    """Readings the server has not yet accepted, per data point, oldest first.

    A row with a NULL value records a failed read: a gap that is kept, never filled in. Writes are
    staged in an open transaction and committed together with the next delivery (or by `commit`),
    so a 30-s cycle costs one commit: the fewest bytes on flash for the durability asked of it.
    The backlog per point is counted once at open and then kept in memory, so asking is free.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._backlog: dict[str, int] = {
            str(point): int(count)
            for point, count in conn.execute(
                "SELECT point, count(*) FROM reading WHERE value IS NOT NULL GROUP BY point"
            )
        }

    def _begin(self) -> None:
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN")

    def stage(
        self, tick: int, values: Mapping[str, int | None], quality: Mapping[str, int] | None = None
    ) -> None:
        """Add one sample (all points of one tick) to the open transaction; a tick seen before is kept.

        `quality`: the quality flags of a point's reading (e.g. questionable), 0 when not given.
        """
        self._begin()
        flags = quality or {}
        for point, value in values.items():
            added = self._conn.execute(
                "INSERT OR IGNORE INTO reading (tick, point, value, quality) VALUES (?, ?, ?, ?)",
                (tick, point, value, flags.get(point, 0)),
            ).rowcount
            if added > 0 and value is not None:
                self._backlog[point] = self._backlog.get(point, 0) + added

    def commit(self) -> None:
        """Make everything staged durable."""
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def pending(self, point: str, limit: int) -> list[tuple[int, int, int]]:
        """Up to `limit` undelivered (tick, value, quality) readings of `point`, oldest first, no gaps."""
        rows = self._conn.execute(
            "SELECT tick, value, quality FROM reading WHERE point = ? AND value IS NOT NULL "
            "ORDER BY tick LIMIT ?",
            (point, limit),
        )
        return [(int(tick), int(value), int(quality)) for tick, value, quality in rows]

    def backlog(self, point: str) -> int:
        """How many readings of `point` wait for the server (no I/O)."""
        return self._backlog.get(point, 0)

    def backlogs(self) -> dict[str, int]:
        """How many readings wait for the server, per point that ever had one (no I/O)."""
        return dict(self._backlog)

    def delivered(self, point: str, through: int, *, commit: bool = True) -> None:
        """The server accepted every reading of `point` up to tick `through`: forget them.

        With `commit=False` the deletion joins the open transaction (made durable by `commit`).
        """
        self._begin()
        taken = self._conn.execute(
            "DELETE FROM reading WHERE point = ? AND tick <= ? AND value IS NOT NULL", (point, through)
        ).rowcount
        self._backlog[point] = self._backlog.get(point, 0) - taken
        self._conn.execute("DELETE FROM reading WHERE point = ? AND tick <= ?", (point, through))  # gaps
        if commit:
            self._conn.execute("COMMIT")

    def drop_older_than(self, cutoff: int) -> dict[str, int]:
        """Forget rows before tick `cutoff`; return how many undelivered readings fell off, per point."""
        self._begin()
        dropped = {
            str(point): int(count)
            for point, count in self._conn.execute(
                "SELECT point, count(*) FROM reading WHERE tick < ? AND value IS NOT NULL GROUP BY point",
                (cutoff,),
            )
        }
        # A DELETE that matches nothing dirties no page, so the hourly call costs no write.
        self._conn.execute("DELETE FROM reading WHERE tick < ?", (cutoff,))
        self._conn.execute("COMMIT")
        for point, count in dropped.items():
            self._backlog[point] = self._backlog.get(point, 0) - count
        return dropped

    def latest_tick(self) -> int | None:
        """The newest tick recorded (delivered ticks are gone), or None when the outbox is empty."""
        (tick,) = self._conn.execute("SELECT max(tick) FROM reading").fetchone()
        return None if tick is None else int(tick)
