"""The durable ledger: records, owed responses and the saved default survive a reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.control.ledger import FILE_NAME, Ledger
from app.control.schedule import DueResponse, EventRecord
from app.sep.der import DefaultDERControl, DERControlBase


def reopen(ledger: Ledger) -> Ledger:
    ledger.close()
    return Ledger(ledger.path.parent)


def test_records_survive_a_reopen(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    records = [
        EventRecord("A1", 100.0, 12.5, -3.25, frozenset({1, 2})),
        EventRecord("B1", 101.0, 0.0, 0.0, frozenset({1, 6}), stop_at=150.5),
    ]
    ledger.commit(records, [])
    ledger = reopen(ledger)
    assert ledger.records() == {r.mrid: r for r in records}
    ledger.close()


def test_each_response_is_owed_once_until_delivered(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    first = DueResponse("A1", 1, "/rsp", 100.0)
    ledger.commit([EventRecord("A1", 100.0, 0, 0, frozenset({1}))], [first])
    ledger.commit([], [first, DueResponse("A1", 2, "/rsp", 110.0)])  # a repeat is ignored
    ledger = reopen(ledger)
    owed = ledger.owed()
    assert [(o.mrid, o.status, o.reply_to, o.created) for o in owed] == [
        ("A1", 1, "/rsp", 100.0),
        ("A1", 2, "/rsp", 110.0),
    ]
    ledger.delivered(owed[0])
    ledger = reopen(ledger)
    assert [o.status for o in ledger.owed()] == [2]
    ledger.close()


def test_the_default_control_is_saved_and_cleared(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    assert ledger.last_default() is None
    default = DefaultDERControl(
        href="/derp/1/dderc", mRID="D1", DERControlBase=DERControlBase(opModFixedW=-2500), setGradW=27
    )
    ledger.save_default(default)
    ledger = reopen(ledger)
    assert ledger.last_default() == default
    ledger.save_default(None)
    assert ledger.last_default() is None
    ledger.close()


def test_prune_forgets_only_old_finished_unlisted_answered_events(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    done = frozenset({1, 2, 3})
    ledger.commit(
        [
            EventRecord("OLD", 10.0, 0, 0, done),
            EventRecord("LISTED", 10.0, 0, 0, done),
            EventRecord("OPEN", 10.0, 0, 0, frozenset({1, 2})),
            EventRecord("RECENT", 500.0, 0, 0, done),
            EventRecord("OWED", 10.0, 0, 0, done),
        ],
        [DueResponse("OWED", 3, "/rsp", 20.0)],
    )
    assert ledger.prune(keep=["LISTED"], before=100.0) == 1
    assert set(ledger.records()) == {"LISTED", "OPEN", "RECENT", "OWED"}
    ledger.close()


def test_the_ledger_lives_in_the_one_store(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.commit([EventRecord("A1", 100.0, 0, 0, frozenset({1}))], [])
    ledger.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]
    db = sqlite3.connect(tmp_path / FILE_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT mrid FROM control_event").fetchall() == [("A1",)]
    db.close()
