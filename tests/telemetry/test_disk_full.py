"""The data partition fills up while sampling: readings wait in memory, nothing is lost or sent twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from app.client.server import Server
from app.config import Config
from app.health import Health, Kind
from app.store import open_store
from app.store.database import FILENAME
from app.telemetry import TelemetryService
from app.telemetry.service import OPEN_RETRY_S, STORAGE_PART
from tests.faults.tmpfs import fill, small_tmpfs
from tests.telemetry.conftest import START, Device
from tests.telemetry.helpers import received_ticks, running
from tests.telemetry.simclock import SimClock
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter


async def test_disk_full_while_sampling_then_space_returns(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", 1024) as disk:
        config = dataclasses.replace(make_config(), state_dir=disk / "state")
        health = Health()
        service = TelemetryService(config, inverter, http, device.links, clock, health, device.lfdi)
        async with running(service) as stop:
            await clock.run_until(START + timedelta(minutes=10, seconds=5))
            store = open_store(config.state_dir)
            try:
                store.raw("PRAGMA wal_checkpoint(TRUNCATE)")  # no WAL left to reuse: the next commit grows it
                filler = fill(disk)
                await clock.run_until(START + timedelta(minutes=25, seconds=5))
                assert STORAGE_PART in health.problems()
                assert "disk is full" in health.problems()[STORAGE_PART]
                assert health.kind(STORAGE_PART) is Kind.STORAGE
                held = service.status()["held in memory"]
                assert isinstance(held, int) and held >= 25
                filler.unlink()
                # the fault clears within one cycle of space returning
                await clock.run_until(START + timedelta(minutes=25, seconds=35))
                assert STORAGE_PART not in health.problems()
                assert service.status()["held in memory"] == 0
                await clock.run_until(START + timedelta(minutes=40, seconds=5))
                await stop()
            finally:
                store.close()
        with open_store(config.state_dir) as store:
            waiting = {p: [t for t, *_ in store.outbox.pending(p, 1000)] for p in ("W", "Hz")}
    first = int((START + timedelta(seconds=10)).timestamp())
    last = int((START + timedelta(minutes=40)).timestamp()) // 30 * 30
    grid = list(range(first, last + 1, 30))
    mups = received_ticks(lab)
    assert len(mups) == 2
    for n, counts in mups.items():
        assert set(counts.values()) == {1}, "a reading arrived twice"
        key = "W" if lab.tree.mups[n].MirrorMeterReading[0].ReadingType.uom == 38 else "Hz"  # type: ignore[union-attr]
        assert sorted(counts) + waiting[key] == grid, "a reading was lost"


async def test_an_outbox_that_cannot_be_opened_is_waited_for_without_a_crash(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    blocker = config.state_dir / FILENAME
    blocker.mkdir(parents=True)  # sqlite cannot open a folder: "unable to open database file"
    health = Health()
    service = TelemetryService(config, inverter, http, device.links, clock, health, device.lfdi)
    async with running(service) as stop:
        await clock.run_for(95)
        assert "cannot be opened" in health.problems()[STORAGE_PART]
        assert not lab.tree.readings
        blocker.rmdir()
        await clock.run_for(OPEN_RETRY_S + 35)
        assert STORAGE_PART not in health.problems()
        await clock.run_for(300)
        await stop()
    assert lab.tree.readings  # sampling and reporting run once the outbox opened
