"""The whole gateway (in-process) on a box whose state file is damaged and whose control ledger and
telemetry links are still in the old layout: control, readings and the status page carry on."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from app.store import open_store
from app.store.database import FILENAME
from app.store.quarantine import kept
from app.telemetry.links import LINKS_FILE, LINKS_KEY
from tests.app.test_gateway_lifecycle import gateway, until
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer


def _old_layout(state: Path) -> None:
    """A damaged gateway.sqlite, and the control ledger and links as the previous release kept them."""
    state.mkdir(parents=True)
    (state / FILENAME).write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 16)
    old = sqlite3.connect(state / "control.sqlite3")
    old.executescript(
        """CREATE TABLE event (mrid TEXT PRIMARY KEY, first_seen REAL NOT NULL, start_offset REAL NOT NULL,
            duration_offset REAL NOT NULL, reached TEXT NOT NULL, stop_at REAL);
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, mrid TEXT NOT NULL,
            status INTEGER NOT NULL, reply_to TEXT NOT NULL, created REAL NOT NULL, UNIQUE (mrid, status));
        CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);"""
    )
    # finished yesterday: kept (finished events are forgotten after 30 days)
    old.execute("INSERT INTO event VALUES ('OLD1', ?, 0.0, 0.0, '1,2,3', NULL)", (time.time() - 86400,))
    old.commit()
    old.close()
    (state / LINKS_FILE).write_text(json.dumps({"mirror_usage_points": "/old/mup"}))


async def test_damaged_store_and_old_layout_at_start(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    state = tmp_path / "state"
    _old_layout(state)
    path = write_lab_config(
        tmp_path / "gateway.yaml", lab_server, battery.port, state, telemetry={"interval_s": 1}
    )
    tree = lab_server.tree
    start = tree.now().replace(microsecond=0) + timedelta(seconds=3)
    control = tree.add_control(1, start=start, duration=60, target_w=-1200.0)
    gw = gateway(path)
    run = asyncio.create_task(gw.run())
    try:
        # control: the event in force reaches the battery within seconds of its start
        assert await until(lambda: battery.device.get(704, "WSetEna") == 1, 15)
        assert (tree.now() - start).total_seconds() < 3

        def answered() -> set[int]:
            return {r.status for r in tree.responses if r.subject == control.mRID}

        assert await until(lambda: {1, 2} <= answered(), 5)
        # telemetry: readings reach the server's mirrors
        assert await until(lambda: bool(tree.readings), 15)
        # the status page tells what happened; nothing crash-loops
        storage = gw.status()["storage"]
        assert storage["rebuilt"] and "damaged" in storage["rebuilt"][-1], storage
        assert storage["problem"] is None
        assert gw.supervisor.crash_looping() == []
        assert all(p.restarts == 0 for p in gw.supervisor.parts.values())
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)
    assert [p.name.split(".")[0] for p in kept(state)] == ["gateway"]
    assert not (state / "control.sqlite3").exists() and not (state / LINKS_FILE).exists()
    with open_store(state) as store:
        ((mrid,),) = store.query("SELECT mrid FROM control_event WHERE mrid = 'OLD1'")
        assert mrid == "OLD1"  # the old ledger was migrated into the rebuilt store
        links = store.state.get(LINKS_KEY)
        assert links is not None and "/old/mup" not in links  # moved in, then the server's current ones
