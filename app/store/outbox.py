"""The durable outbox of 30-s readings: staged with the tick, deleted once the server has taken them."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from app.store.errors import StoreUnavailable

if TYPE_CHECKING:
    from app.store.database import Store

_LOGGER = logging.getLogger(__name__)

#: samples kept in memory while they cannot be written (a full disk): one day of 30-s ticks, ~1 MB
MAX_HELD: Final = 2880

_INSERT: Final = "INSERT OR IGNORE INTO reading (tick, point, value, quality) VALUES (?, ?, ?, ?)"
#: one sample: its tick, the value per point, the quality flags per point (absent = 0, valid)
_Sample = tuple[int, dict[str, int | None], dict[str, int]]


class Outbox:
    """Readings the server has not yet accepted, per data point, oldest first.

    A row with a NULL value records a failed read: a gap that is kept, never filled in. Writes are
    staged in an open transaction and committed together with the next delivery (or by `commit`),
    so a 30-s cycle costs one commit: the fewest bytes on flash for the durability asked of it.
    The backlog per point is counted once at open and then kept in memory, so asking is free.

    A sample is also kept in memory until its commit succeeds: when the disk is full (or the file
    was rebuilt) the samples not yet written wait there, at most `MAX_HELD` of them (the oldest go
    first, counted in `lost`), and are written by the first commit that works again.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._unsaved: deque[_Sample] = deque()
        self._must_restage = False
        #: per point, the newest tick the server took: its deletion may have been rolled back (full disk)
        self._delivered_through: dict[str, int] = {}
        self.lost = 0
        """Samples dropped because more than MAX_HELD waited in memory."""
        self._backlog: dict[str, int] = {}

    def reset(self) -> None:
        """Count the backlog from the file again (opened, or rebuilt after damage)."""
        self._backlog = {
            str(point): int(count)
            for point, count in self._store.query(
                "SELECT point, count(*) FROM reading WHERE value IS NOT NULL GROUP BY point"
            )
        }
        self._must_restage = bool(self._unsaved)

    @property
    def held(self) -> int:
        """Samples waiting in memory because they could not be written yet."""
        return len(self._unsaved) if self._must_restage else 0

    def stage(
        self, tick: int, values: Mapping[str, int | None], quality: Mapping[str, int] | None = None
    ) -> None:
        """Add one sample (all points of one tick) to the open transaction; a tick seen before is kept.

        `quality`: the quality flags of a point's reading (e.g. questionable), 0 when not given.
        Never raises for storage trouble: a sample that cannot be written is held in memory.
        """
        if len(self._unsaved) >= MAX_HELD:
            self._unsaved.popleft()
            self.lost += 1
        sample = (tick, dict(values), dict(quality or {}))
        self._unsaved.append(sample)
        if self._must_restage:
            return  # the next commit writes every held sample, this one included
        try:
            self._insert(sample)
        except StoreUnavailable as exc:
            _LOGGER.debug("sample %d held in memory: %s", tick, exc)

    def _insert(self, sample: _Sample) -> None:
        tick, values, flags = sample
        self._store.begin()
        for point, value in values.items():
            added = self._store.execute(_INSERT, (tick, point, value, flags.get(point, 0))).rowcount
            if added > 0 and value is not None:
                self._backlog[point] = self._backlog.get(point, 0) + added

    def commit(self) -> bool:
        """Make everything staged (and anything held in memory) durable; False when it cannot yet."""
        held = self.held
        try:
            if self._must_restage:
                for sample in list(self._unsaved):
                    self._insert(sample)
                for point, through in self._delivered_through.items():  # deletions rolled back
                    self._delete(point, through)
                self._must_restage = False
            self._store.commit()
        except StoreUnavailable as exc:
            _LOGGER.debug("outbox commit failed, %d sample(s) held in memory: %s", len(self._unsaved), exc)
            return False
        if held:
            _LOGGER.info("%d sample(s) held in memory are now in the outbox", held)
        return True

    def committed(self) -> None:
        """The store committed (called by the store): staged samples are durable, held ones still wait."""
        if not self._must_restage:
            self._unsaved.clear()
            self._delivered_through.clear()  # the deletions are durable now

    def rolled_back(self) -> None:
        """The store rolled back: staged samples are held and the backlog is counted again."""
        self._must_restage = bool(self._unsaved)
        try:
            self._backlog = {
                str(point): int(count)
                for point, count in self._store.raw(
                    "SELECT point, count(*) FROM reading WHERE value IS NOT NULL GROUP BY point"
                )
            }
        except Exception as exc:  # a rebuilt or closed file: counted again on reopen
            _LOGGER.debug("backlog not recounted: %s", exc)

    def pending(self, point: str, limit: int) -> list[tuple[int, int, int]]:
        """Up to `limit` undelivered (tick, value, quality) readings of `point`, oldest first, no gaps."""
        rows = self._store.query(
            "SELECT tick, value, quality FROM reading WHERE point = ? AND tick > ? AND value IS NOT NULL"
            " ORDER BY tick LIMIT ?",
            (point, self._delivered_through.get(point, -1), limit),
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
        # remembered first: a deletion that cannot be written does not make the readings go out again
        self._delivered_through[point] = max(through, self._delivered_through.get(point, through))
        self._delete(point, through)
        if commit:
            self.commit()

    def _delete(self, point: str, through: int) -> None:
        self._store.begin()
        taken = self._store.execute(
            "DELETE FROM reading WHERE point = ? AND tick <= ? AND value IS NOT NULL", (point, through)
        ).rowcount
        self._backlog[point] = self._backlog.get(point, 0) - taken
        self._store.execute("DELETE FROM reading WHERE point = ? AND tick <= ?", (point, through))  # gaps

    def drop_older_than(self, cutoff: int) -> dict[str, int]:
        """Forget rows before tick `cutoff`; return how many undelivered readings fell off, per point."""
        self._store.begin()
        dropped = {
            str(point): int(count)
            for point, count in self._store.query(
                "SELECT point, count(*) FROM reading WHERE tick < ? AND value IS NOT NULL GROUP BY point",
                (cutoff,),
            )
        }
        # A DELETE that matches nothing dirties no page, so the hourly call costs no write.
        self._store.execute("DELETE FROM reading WHERE tick < ?", (cutoff,))
        self.commit()
        for point, count in dropped.items():
            self._backlog[point] = self._backlog.get(point, 0) - count
        return dropped

    def latest_tick(self) -> int | None:
        """The newest tick recorded (delivered ticks are gone), or None when the outbox is empty."""
        ((tick,),) = self._store.query("SELECT max(tick) FROM reading")
        return None if tick is None else int(tick)
