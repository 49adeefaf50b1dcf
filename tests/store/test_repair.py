"""A damaged state file is quarantined and replaced at open and at run time; the old ledger migrates."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.control.ledger import Ledger
from app.control.schedule import EventRecord
from app.store import StoreCorrupt, open_store
from app.store.database import _OPEN, FILENAME
from app.store.quarantine import MAX_FILES, kept, prune


def _filled(state_dir: Path, ticks: int = 400) -> None:
    """A closed store with enough rows for many pages."""
    with open_store(state_dir) as store:
        for tick in range(ticks):
            store.outbox.stage(tick * 30, {"W": tick, "Hz": 5000 + tick, "SoC": tick % 100})
        store.outbox.commit()


def _damage(path: Path, offset: int, length: int = 512) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(bytes((i * 37 + 11) % 256 for i in range(length)))


def _check_fresh_and_usable(state_dir: Path) -> None:
    with open_store(state_dir) as store:
        assert store.repairs and "damaged" in store.repairs[-1]
        assert store.outbox.backlogs() == {}
        store.outbox.stage(30, {"W": 1})
        assert store.outbox.commit()
        assert store.outbox.pending("W", 5) == [(30, 1, 0)]
    assert len(kept(state_dir)) == 1


@pytest.mark.parametrize(
    "where",
    ["header", "middle page", "truncated"],
)
def test_a_damaged_file_is_quarantined_and_a_fresh_one_opened(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    _filled(tmp_path)
    path = tmp_path / FILENAME
    size = path.stat().st_size
    assert size > 20 * 512
    if where == "header":
        _damage(path, 0)
    elif where == "middle page":
        _damage(path, (size // 512 // 2) * 512)
    else:
        with path.open("r+b") as f:
            f.truncate(size // 2)
    caplog.set_level("ERROR")
    _check_fresh_and_usable(tmp_path)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "rebuilt" in errors[0].getMessage()


def test_garbage_in_the_wal_loses_nothing_checkpointed(tmp_path: Path) -> None:
    # a power cut leaves a WAL behind: copy the files while the store is open, as the card holds them
    store = open_store(tmp_path / "live")
    for tick in range(50):
        store.outbox.stage(tick * 30, {"W": tick})
    store.outbox.commit()
    store.raw("PRAGMA wal_checkpoint(TRUNCATE)")
    store.outbox.stage(99_990, {"W": 7})
    store.outbox.commit()  # this one is only in the WAL
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(tmp_path / "live" / (FILENAME + suffix), crashed / (FILENAME + suffix))
    store.close()
    wal = crashed / (FILENAME + "-wal")
    assert wal.stat().st_size > 0
    _damage(wal, 40, 2048)  # the first frame: its checksum no longer matches
    with open_store(crashed) as again:
        # sqlite drops WAL frames whose checksums fail: the commit only in the WAL is gone, nothing else
        assert [t for t, *_ in again.outbox.pending("W", 100)] == [t * 30 for t in range(50)]
        again.outbox.stage(100_000, {"W": 1})
        assert again.outbox.commit()


def test_damage_found_at_run_time_is_repaired_and_the_next_call_works(tmp_path: Path) -> None:
    _filled(tmp_path, ticks=2000)
    store = open_store(tmp_path)
    store.raw("PRAGMA cache_size = 4")  # let pages come from the card again, as after a long run
    store.outbox.pending("W", 1)
    path = tmp_path / FILENAME
    size = path.stat().st_size
    for page in range(size // 512 // 3, size // 512 - 2, 7):
        _damage(path, page * 512)
    with pytest.raises(StoreCorrupt):
        for point in ("W", "Hz", "SoC"):
            store.outbox.pending(point, 10_000)
    assert len(kept(tmp_path)) == 1
    assert store.generation == 1
    store.outbox.stage(30, {"W": 5})
    assert store.outbox.commit()
    assert store.outbox.pending("W", 10) == [(30, 5, 0)]
    store.close()


def test_quarantine_keeps_a_few_files_bounded_in_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "quarantine"
    folder.mkdir()
    for n in range(6):
        (folder / f"{FILENAME}.2026010{n}T000000000000Z").write_bytes(b"x" * 1000)
        (folder / f"{FILENAME}.2026010{n}T000000000000Z-wal").write_bytes(b"x" * 100)
    prune(folder, max_files=MAX_FILES, max_bytes=2500)
    # two newest fit in 2,500 bytes (1,100 each); the third would not
    assert [p.name[-22:] for p in kept(tmp_path)] == ["20260104T000000000000Z", "20260105T000000000000Z"]
    assert len(list(folder.iterdir())) == 4


_OLD_SCHEMA = """
CREATE TABLE event (mrid TEXT PRIMARY KEY, first_seen REAL NOT NULL, start_offset REAL NOT NULL,
    duration_offset REAL NOT NULL, reached TEXT NOT NULL, stop_at REAL);
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, mrid TEXT NOT NULL, status INTEGER NOT NULL,
    reply_to TEXT NOT NULL, created REAL NOT NULL, UNIQUE (mrid, status));
CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
_DEFAULT_XML = (
    b'<DefaultDERControl xmlns="urn:ieee:std:2030.5:ns"><mRID>D1</mRID>'
    b"<DERControlBase><opModFixedW>1000</opModFixedW></DERControlBase></DefaultDERControl>"
)


def _old_ledger(state_dir: Path) -> Path:
    """A control.sqlite3 as the previous release left it on a box in the field."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "control.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_OLD_SCHEMA)
    db.execute("INSERT INTO event VALUES ('E1', 100.0, 2.5, -1.0, '1,2', NULL)")
    db.execute("INSERT INTO outbox (mrid, status, reply_to, created) VALUES ('E1', 2, '/rsp', 110.0)")
    db.execute("INSERT INTO kv VALUES ('default_der_control', ?)", (_DEFAULT_XML,))
    db.commit()
    db.close()
    return path


def test_the_old_control_ledger_is_migrated_once_then_removed(tmp_path: Path) -> None:
    old = _old_ledger(tmp_path)
    ledger = Ledger(tmp_path)
    assert ledger.records() == {"E1": EventRecord("E1", 100.0, 2.5, -1.0, frozenset({1, 2}))}
    assert [(o.mrid, o.status, o.reply_to) for o in ledger.owed()] == [("E1", 2, "/rsp")]
    default = ledger.last_default()
    assert default is not None and default.mRID == "D1"
    ledger.close()
    assert not old.exists() and not (tmp_path / "control.sqlite3-wal").exists()
    again = Ledger(tmp_path)  # nothing to migrate a second time; the rows stay
    assert set(again.records()) == {"E1"}
    again.close()


def test_a_damaged_old_ledger_is_quarantined_not_migrated(tmp_path: Path) -> None:
    old = _old_ledger(tmp_path)
    _damage(old, 0, 100)
    ledger = Ledger(tmp_path)
    assert ledger.records() == {} and ledger.owed() == []
    ledger.close()
    assert not old.exists()
    assert any(p.name.startswith("control.sqlite3.") for p in (tmp_path / "quarantine").iterdir())


@pytest.fixture(autouse=True)
def _no_store_left_open() -> Iterator[None]:
    yield
    assert not _OPEN, "a test left the shared store open"
