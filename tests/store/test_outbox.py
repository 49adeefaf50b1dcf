"""The durable outbox: staged readings, delivery, the age bound, and what survives a reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.store import Store, open_store
from app.store.database import _OPEN, FILENAME


def abandon(store: Store) -> None:
    """Drop the store as a killed process would: nothing staged is committed, nothing closed cleanly."""
    store._conn.rollback()
    store._conn.close()
    _OPEN.pop(store.path)


def test_pending_is_oldest_first_and_skips_recorded_gaps(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store.outbox.stage(60, {"W": 10, "Hz": 6001})
        store.outbox.stage(30, {"W": None, "Hz": 6000})
        store.outbox.stage(90, {"W": -5, "Hz": None})
        assert store.outbox.pending("W", 10) == [(60, 10, 0), (90, -5, 0)]
        assert store.outbox.pending("Hz", 1) == [(30, 6000, 0)]
        assert store.outbox.backlog("Hz") == 2
        assert store.outbox.latest_tick() == 90


def test_delivered_forgets_up_to_the_tick_per_point(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        for tick in (30, 60, 90):
            store.outbox.stage(tick, {"W": tick, "Hz": tick + 1})
        store.outbox.delivered("W", 60)
        assert store.outbox.pending("W", 10) == [(90, 90, 0)]
        assert [t for t, _, _ in store.outbox.pending("Hz", 10)] == [30, 60, 90]


def test_a_tick_seen_twice_keeps_the_first_reading(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store.outbox.stage(30, {"W": 1})
        store.outbox.stage(30, {"W": 2})
        assert store.outbox.pending("W", 10) == [(30, 1, 0)]


def test_staged_rows_are_lost_when_the_process_dies_committed_ones_are_not(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.outbox.stage(30, {"W": 1})
    store.outbox.commit()
    store.outbox.stage(60, {"W": 2})
    # Abandon the connection as a kill -9 would: the open transaction is rolled back, never committed.
    abandon(store)
    with open_store(tmp_path) as again:
        assert again.outbox.pending("W", 10) == [(30, 1, 0)]


def test_age_bound_drops_and_counts_undelivered_readings(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        for tick in (30, 60, 90, 120):
            store.outbox.stage(tick, {"W": 1, "Hz": None if tick == 60 else 2})
        store.outbox.commit()
        assert store.outbox.drop_older_than(100) == {"W": 3, "Hz": 2}
        assert store.outbox.pending("W", 10) == [(120, 1, 0)]
        assert store.outbox.drop_older_than(100) == {}


def test_state_table_persists_and_skips_unchanged_writes(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store.state.set("mup:AB", "/mup/1")
        store.state.set("mup:AB", "/mup/1")
        store.state.set("x", "1")
        store.state.delete("x")
    with open_store(tmp_path) as store:
        assert store.state.get("mup:AB") == "/mup/1"
        assert store.state.get("x") is None


def test_flash_friendly_settings(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        conn = store._conn
        assert conn.execute("PRAGMA page_size").fetchone() == (512,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        store.outbox.stage(30, {"W": 1})
        store.outbox.commit()
        # Exclusive locking keeps the WAL index in memory: no -shm file on the SD card.
        assert not (tmp_path / f"{FILENAME}-shm").exists()


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store.outbox.stage(30, {"W": 1})
        store.outbox.commit()
        # every part of this process shares the one connection ...
        with open_store(tmp_path) as again:
            assert again is store
        # ... and another process cannot get in while this one holds the file
        other = sqlite3.connect(tmp_path / FILENAME, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT count(*) FROM reading").fetchone()
        other.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store._conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        open_store(tmp_path)


def test_the_backlog_is_kept_in_memory_and_matches_the_rows(tmp_path: Path) -> None:
    def counted(store_dir: Path) -> dict[str, int]:
        conn = sqlite3.connect(store_dir / FILENAME)
        try:
            rows = conn.execute("SELECT point, count(*) FROM reading WHERE value IS NOT NULL GROUP BY point")
            return {str(p): int(n) for p, n in rows}
        finally:
            conn.close()

    with open_store(tmp_path) as store:
        for tick in (30, 60, 90, 120):
            store.outbox.stage(tick, {"W": None if tick == 60 else tick, "Hz": tick})
        store.outbox.stage(30, {"W": 7, "Hz": 7})  # a tick seen before is kept, not counted again
        store.outbox.delivered("W", 90)
        store.outbox.commit()
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)
        assert store.outbox.backlogs() == {"W": 1, "Hz": 4}
        assert store.outbox.backlog("Hz") == 4
        assert statements == []  # the status page may ask as often as it likes
        store._conn.set_trace_callback(None)
        assert store.outbox.drop_older_than(61) == {"Hz": 2}
        assert store.outbox.backlogs() == {"W": 1, "Hz": 2}
    assert counted(tmp_path) == {"W": 1, "Hz": 2}
    with open_store(tmp_path) as again:
        assert again.outbox.backlogs() == {"W": 1, "Hz": 2}
