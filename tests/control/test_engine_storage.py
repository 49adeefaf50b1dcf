"""Control never waits for storage: a damaged or full state file still lets the event in force apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.control.engine import STORAGE_PART
from app.control.ledger import Ledger
from app.health import Health
from app.sep.der import DERControlBase
from app.store import open_store
from app.store.database import FILENAME
from app.store.quarantine import kept
from tests.control.builders import control, program
from tests.control.fakes import FakeServer, wait_until
from tests.control.test_engine import engine_for, make_config, now_s, running
from tests.faults.tmpfs import fill, small_tmpfs


def _damage(path: Path, offset: int, length: int = 512) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(bytes((i * 37 + 11) % 256 for i in range(length)))


@pytest.mark.parametrize("where", ["header", "middle page", "truncated", "wal garbage"])
async def test_after_damage_and_a_restart_the_event_in_force_applies(tmp_path: Path, where: str) -> None:
    config = make_config(tmp_path)
    event = control("E1", now_s(-5), 3600, fixed=4000)
    programs = [program(1, event, default=DERControlBase(opModFixedW=1000))]
    link = FakeServer()
    engine, _ = engine_for(config, link)
    async with running(engine):
        engine.update(programs)
        await wait_until(lambda: engine.setpoint == 2000.0 and len(link.posted) == 2)
    with open_store(config.state_dir) as store:  # a realistic file: a backlog of readings too
        for tick in range(300):
            store.outbox.stage(tick * 30, {"W": tick, "Hz": 5000})
        store.outbox.commit()
        if where == "wal garbage":  # a power cut with commits only in the WAL
            store.outbox.stage(99_990, {"W": 1})
            store.outbox.commit()
            for suffix in ("", "-wal"):
                shutil.copy(store.path.with_name(FILENAME + suffix), tmp_path / (FILENAME + suffix))
    path = config.state_dir / FILENAME
    if where == "wal garbage":
        for suffix in ("", "-wal"):
            shutil.copy(tmp_path / (FILENAME + suffix), config.state_dir / (FILENAME + suffix))
        _damage(config.state_dir / (FILENAME + "-wal"), 32, 4096)
    elif where == "header":
        _damage(path, 0)
    elif where == "middle page":
        _damage(path, (path.stat().st_size // 512 // 2) * 512)
    else:
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size // 2)
    health = Health()
    again, _ = engine_for(config, link, health)
    async with running(again):
        link.publish(programs)
        await wait_until(lambda: again.setpoint == 2000.0, timeout_s=3)
        # responses are paced (server.responses_per_s): wait for the re-sent ones too
        await wait_until(lambda: len(link.posted) >= (2 if where == "wal garbage" else 4))
    assert STORAGE_PART not in health.problems()
    if where == "wal garbage":
        assert kept(config.state_dir) == []  # sqlite ignores WAL frames that fail their checksum
        assert len(link.posted) == 2  # the ledger was checkpointed: nothing re-sent
    else:
        assert len(kept(config.state_dir)) == 1
        # the only cost of a rebuilt store: the responses already sent are sent once more
        assert [r.status for _, r in link.posted] == [1, 2, 1, 2]
        ledger = Ledger(config.state_dir)
        assert set(ledger.records()) == {"E1"} and ledger.owed() == []
        ledger.close()


async def test_a_full_disk_does_not_stop_control_and_the_state_is_saved_when_space_returns(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", 512) as disk:
        config = make_config(disk)
        health = Health()
        link = FakeServer()
        engine, _ = engine_for(config, link, health)
        with open_store(config.state_dir):
            pass  # the file exists, as on a box that has run before
        filler = fill(disk)
        async with running(engine):
            engine.update([program(1, control("E1", now_s(-1), 3600, fixed=-3000))])
            await wait_until(lambda: engine.setpoint == -1500.0)
            await wait_until(lambda: STORAGE_PART in health.problems())
            filler.unlink()
            engine.update([program(1, control("E1", now_s(-1), 3600, fixed=-3000))])
            await wait_until(lambda: STORAGE_PART not in health.problems())
            await wait_until(lambda: len(link.posted) == 2)
        ledger = Ledger(config.state_dir)
        assert set(ledger.records()) == {"E1"}
        ledger.close()
