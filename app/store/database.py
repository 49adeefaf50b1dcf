"""Open the gateway's sqlite file with flash-friendly settings and bring its schema up to date."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from app.store.outbox import Outbox
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
)


class Store:
    """The open state database: the telemetry outbox and a small key/value table."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.outbox = Outbox(conn)
        self.state = StateTable(conn)

    def close(self) -> None:
        """Commit anything staged and close the file."""
        try:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")
        finally:
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
    """Open (creating if needed) the state database in `state_dir`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / FILENAME
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a sample can stay staged (uncommitted)
    # until the post that carries it has been answered, and both land in one commit.
    # timeout: a second owner (another gateway process) fails fast instead of hanging start-up.
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.5)
    try:
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return Store(conn, path)


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
