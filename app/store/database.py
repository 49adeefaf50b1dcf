"""The gateway's one sqlite file: flash-friendly settings, versioned schema, shared by every part."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from app.store.errors import StoreCorrupt, StoreFull, StoreUnavailable
from app.store.legacy import import_old_ledger
from app.store.outbox import Outbox
from app.store.quarantine import quarantine
from app.store.state import StateTable

_LOGGER = logging.getLogger(__name__)

FILENAME: Final = "gateway.sqlite"

# The box lives on an SD card for ten years, so every setting below trades for fewer bytes written.
_PRAGMAS: Final = (
    # A WAL frame is one whole page and a 30-s sample rewrites about one page: 512-byte pages cut the
    # bytes per commit by 8 against the 4096 default. Only takes effect when the file is created.
    "PRAGMA page_size = 512",
    # One process owns the file. Taken before WAL is switched on, sqlite keeps the WAL index in heap
    # memory instead of an mmap'd -shm file whose dirty pages the kernel would write back to flash.
    "PRAGMA locking_mode = EXCLUSIVE",
    # WAL appends each commit once; a rollback journal writes every page twice and creates and
    # deletes a file (filesystem metadata) per commit.
    "PRAGMA journal_mode = WAL",
    # NORMAL: a commit is in the OS once `COMMIT` returns, so kill -9 loses nothing committed; a power
    # cut can lose the commits the kernel has not yet written back (its dirty-page expiry, ~30 s, i.e.
    # about the one reading being taken) but never corrupts the file. FULL would fsync every 30 s,
    # forcing a flash program/erase cycle per reading.
    "PRAGMA synchronous = NORMAL",
    # After a long outage the backlog inflates the WAL; give the space back once it is delivered.
    "PRAGMA journal_size_limit = 262144",
    "PRAGMA temp_store = MEMORY",
    # The page cache is heap memory that stays once filled; sqlite's default (2 MB) would fill as the
    # outbox grows over an outage. 512 KiB holds the hot pages of a small database (~1000 pages).
    "PRAGMA cache_size = -512",
)

# Each entry moves the schema from version N to N+1 (PRAGMA user_version); never edit a shipped one.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        # (tick, point) as the key of a WITHOUT ROWID table: the newest samples of every point share
        # the last b-tree leaf, so staging a tick and deleting what was just delivered touch one page.
        """CREATE TABLE reading (
            tick INTEGER NOT NULL,
            point TEXT NOT NULL,
            value INTEGER,
            PRIMARY KEY (tick, point)
        ) WITHOUT ROWID""",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
    # The reading's quality flags as posted (Reading.qualityFlags; 0 = valid, sent without flags).
    ("ALTER TABLE reading ADD COLUMN quality INTEGER NOT NULL DEFAULT 0",),
    (
        # The control engine's ledger (was its own control.sqlite3): event records and owed responses.
        """CREATE TABLE control_event (
            mrid TEXT PRIMARY KEY,
            first_seen REAL NOT NULL,
            start_offset REAL NOT NULL,
            duration_offset REAL NOT NULL,
            reached TEXT NOT NULL,
            stop_at REAL
        ) WITHOUT ROWID""",
        """CREATE TABLE control_response (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            mrid TEXT NOT NULL,
            status INTEGER NOT NULL,
            reply_to TEXT NOT NULL,
            created REAL NOT NULL,
            UNIQUE (mrid, status)
        )""",
    ),
)

#: sqlite's primary result codes that mean the file itself is damaged
_CORRUPT_CODES: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

#: the one open store per state file in this process, shared by control, telemetry and the page
_OPEN: dict[Path, Store] = {}


class Store:
    """The open state database; repairs itself when sqlite reports a damaged file.

    Parts do not keep the connection: they go through `execute`/`commit`, which turn sqlite's
    errors into `StoreUnavailable` (full, I/O) or `StoreCorrupt` (after the bad file has been
    quarantined and a fresh one opened, so the next call works again).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = 0
        """How many times the file was rebuilt in this process (parts re-save what they hold)."""
        self.repairs: list[str] = []
        """What was rebuilt and why, newest last (a few; for the status page)."""
        self.problem: str | None = None
        """Why the last write failed (e.g. the disk is full), until one succeeds again."""
        self._users = 0
        self._closed = False
        self.outbox = Outbox(self)
        self.state = StateTable(self)
        self._conn = self._connect()
        self.outbox.reset()

    # --- the connection -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            return _open(self.path)
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc):
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            self._quarantine(exc)
            try:
                return _open(self.path)
            except sqlite3.DatabaseError as again:
                raise StoreUnavailable(f"{self.path}: {again}") from again

    def _quarantine(self, exc: BaseException) -> None:
        kept = quarantine(self.path)
        self.generation += 1
        message = f"{self.path.name} was damaged ({exc}); started a fresh one" + (
            f", the bad file kept as {kept.name}" if kept is not None else ""
        )
        _LOGGER.error("State database rebuilt: %s", message)
        self.repairs = [*self.repairs[-2:], message]

    def _repair(self, exc: sqlite3.DatabaseError) -> None:
        """Quarantine the damaged file and open a fresh one in its place."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._quarantine(exc)
        self._closed = True
        self._reopen()

    def _reopen(self) -> None:
        """Open the file again after a repair (a fresh file, unless sqlite still cannot)."""
        try:
            self._conn = _open(self.path)
        except sqlite3.DatabaseError as exc:
            # every call fails as unavailable until a reopen works (e.g. the disk has space again)
            self.problem = f"cannot open {self.path.name}: {exc}"
            raise StoreUnavailable(self.problem) from exc
        self._closed = False
        self.outbox.reset()

    def _failed(self, exc: sqlite3.Error) -> StoreUnavailable:
        """Turn a sqlite error into ours: repair a damaged file, roll back after a failed write."""
        if isinstance(exc, sqlite3.DatabaseError) and _corrupt(exc):
            with contextlib.suppress(StoreUnavailable):
                self._repair(exc)
            return StoreCorrupt(f"{self.path.name} was damaged and has been rebuilt ({exc})")
        self._rollback()
        if _code(exc) == sqlite3.SQLITE_FULL:
            self.problem = f"cannot write {self.path.name}: the disk is full"
            return StoreFull(self.problem)
        self.problem = f"cannot write {self.path.name}: {exc}"
        return StoreUnavailable(self.problem)

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            _LOGGER.debug("rollback failed: %s", exc)
        self.outbox.rolled_back()

    # --- what parts call --------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """True while writes are staged and not yet committed."""
        return not self._closed and self._conn.in_transaction

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run one statement; sqlite's errors come out as StoreUnavailable/StoreCorrupt."""
        if self._closed:
            self._reopen()
        try:
            return self._conn.execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            raise self._failed(exc) from exc

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Every row of a SELECT, read in full (damage found while reading is handled as in `execute`)."""
        if self._closed:
            self._reopen()
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            raise self._failed(exc) from exc

    def raw(self, sql: str) -> sqlite3.Cursor:
        """Run a read without any repair or rollback (for use while handling a failure)."""
        return self._conn.execute(sql)

    def begin(self) -> None:
        """Open a transaction unless one is open (writes then wait for `commit`)."""
        if not self.in_transaction:
            self.execute("BEGIN")

    def commit(self) -> None:
        """Make everything staged durable; on failure it is rolled back (the outbox keeps its part)."""
        if self.in_transaction:
            self.execute("COMMIT")
        self.problem = None
        self.outbox.committed()

    def write(self, statements: Iterable[tuple[str, Iterable[Any]]]) -> None:
        """Apply `statements` together (all or none) and commit, joining anything staged."""
        self.execute("SAVEPOINT write")
        try:
            for sql, params in statements:
                self.execute(sql, params)
        except BaseException:
            if self.in_transaction:
                self.execute("ROLLBACK TO write")
                self.execute("RELEASE write")
            raise
        self.execute("RELEASE write")
        self.commit()

    def status(self) -> dict[str, object]:
        """For the status page: the file, the last repairs and any write problem (no I/O)."""
        return {
            "file": str(self.path),
            "rebuilt": self.repairs or None,
            "problem": self.problem,
            "readings held in memory": self.outbox.held,
        }

    # --- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Let go of the store; the last user commits anything staged and closes the file."""
        self._users -= 1
        if self._users > 0:
            return
        _OPEN.pop(self.path, None)
        try:
            self.outbox.commit()
        finally:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_store(state_dir: Path) -> Store:
    """The state database in `state_dir`, opened (created, repaired, migrated) on first use.

    Every part of the process gets the same store; each `close()` lets go of one use.
    """
    path = (state_dir / FILENAME).absolute()
    store = _OPEN.get(path)
    if store is None:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {state_dir}: {exc}") from exc
        store = Store(path)
        try:
            import_old_ledger(store)
        except StoreUnavailable as exc:  # e.g. a full disk: the old file stays and is tried next start
            _LOGGER.error("old control ledger not migrated yet: %s", exc)
        _OPEN[path] = store
    store._users += 1
    return store


def _open(path: Path) -> sqlite3.Connection:
    """Connect, apply the pragmas, check the file and bring its schema up to date."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a sample can stay staged (uncommitted)
    # until the post that carries it has been answered, and both land in one commit.
    # timeout: a second owner (another gateway process) fails fast instead of hanging start-up.
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.5, check_same_thread=False)
    try:
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        # Reads every page once per start (a few MB at most): a page damaged on the card is found now,
        # not when the outbox reaches it days later.
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise _Damaged("; ".join(problems))
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    return isinstance(exc, _Damaged) or _code(exc) in _CORRUPT_CODES


class _Damaged(sqlite3.DatabaseError):
    """`PRAGMA quick_check` found damage that opening the file did not."""


def _migrate(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(_MIGRATIONS):
        raise RuntimeError(f"state database schema {version} is newer than this software knows")
    for number in range(version, len(_MIGRATIONS)):
        conn.execute("BEGIN")
        for statement in _MIGRATIONS[number]:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
        _LOGGER.info("State database schema now at version %d", number + 1)
