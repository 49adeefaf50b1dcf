"""A one-hour outage, then a kill -9 while the backlog is being delivered: every reading arrives once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from app.client.server import Server
from app.config import Config
from app.health import Health
from app.store import open_store
from app.store.database import FILENAME
from app.telemetry import TelemetryService
from tests.telemetry.conftest import START, Device, polling
from tests.telemetry.helpers import received_ticks, running
from tests.telemetry.simclock import SimClock
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter

REPO = Path(__file__).resolve().parents[2]
BATCH = 10  # readings per post while catching up, so the backlog takes many posts


def _service(
    config: Config, inverter: SimInverter, http: Server, device: Device, clock: SimClock
) -> TelemetryService:
    return TelemetryService(
        config, inverter, http, device.links, clock, Health(), device.lfdi, max_readings_per_post=BATCH
    )


def _posts(lab: LabServer) -> int:
    return sum(1 for r in lab.requests if r.method == "POST" and r.path.startswith("/mup/"))


def _backlog(config: Config) -> dict[str, int]:
    with open_store(config.state_dir) as store:
        return {p: store.outbox.backlog(p) for p in ("W", "Hz")}


async def test_outage_then_kill_9_mid_backlog_delivers_every_reading_once(
    lab: LabServer,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
    pki: Pki,
) -> None:
    config = make_config()

    # 10 minutes of normal reporting, then the server is gone for an hour; sampling goes on
    async with (
        polling(config.server, clock) as http,
        running(_service(config, inverter, http, device, clock)) as stop,
    ):
        await clock.run_for(600)
        await lab.down()
        await clock.run_for(3600)
        await stop()
    await lab.up()
    before = _backlog(config)
    assert min(before.values()) >= 120

    # a separate process delivers the backlog; SIGKILL it after a few posts
    certs = pki.client("client")
    args = {
        "start": clock.now().isoformat(),
        "real_pause_s": 0.3,
        "dcap_url": lab.dcap_url,
        "ca_file": str(pki.ca.cert),
        "cert_file": str(certs.cert),
        "key_file": str(certs.key),
        "state_dir": str(config.state_dir),
        "links": dataclasses.asdict(device.links),
        "lfdi": device.lfdi,
        "max_batch": BATCH,
    }
    posts = _posts(lab)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.telemetry.child",
        json.dumps(args),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while _posts(lab) < posts + 4:
            assert child.returncode is None, "the child died by itself"
            assert time.monotonic() < deadline, "the child never delivered"
            await asyncio.sleep(0.005)
        # Kill right after it committed a batch, while it paces before the next one. (A kill between
        # the server's answer and that commit would re-send one batch: no client can know.)
        wal = config.state_dir / f"{FILENAME}-wal"
        stamp = wal.stat().st_mtime_ns
        while wal.stat().st_mtime_ns == stamp:
            assert time.monotonic() < deadline, "the child stopped committing"
            await asyncio.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        assert child.stderr is not None
        await child.stderr.read()

    # killed mid-delivery: part of the backlog is on the server, part still in the outbox
    after = _backlog(config)
    assert 0 < after["W"] < before["W"]
    with open_store(config.state_dir) as store:
        newest = store.outbox.latest_tick()
    assert newest is not None

    # restarted a little later, the gateway delivers the rest
    clock.set(clock.now().replace(microsecond=0) + timedelta(seconds=newest - clock.now().timestamp() + 1))
    async with (
        polling(config.server, clock) as http,
        running(_service(config, inverter, http, device, clock)) as stop,
    ):
        await clock.run_for(600)
        await stop()

    first = int((START + timedelta(seconds=10)).timestamp())
    last = int(clock.now().timestamp()) // 30 * 30
    grid = list(range(first, last + 1, 30))
    with open_store(config.state_dir) as store:
        waiting = {p: [t for t, _, _ in store.outbox.pending(p, 10_000)] for p in ("W", "Hz")}
    received = received_ticks(lab)
    assert len(received) == 2
    for n, counts in received.items():
        duplicates = sorted(t for t, c in counts.items() if c > 1)
        assert not duplicates, f"readings received twice: {duplicates}"
        key = "W" if lab.tree.mups[n].MirrorMeterReading[0].ReadingType.uom == 38 else "Hz"  # type: ignore[union-attr]
        assert sorted(counts) + waiting[key] == grid
        assert len(waiting[key]) < 10
