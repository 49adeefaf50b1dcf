"""Restarts: a gateway restarted while the server is down goes on sampling into its outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.config import load_config
from app.gateway import LINKS_FILE, Gateway
from app.lab.gateway_config import write_lab_config
from app.lab.server import LabServer
from hal.gpio import LedState
from hal.inverter.sunspec_server import SunSpecServer


async def _until(predicate: object, within: float) -> bool:
    for _ in range(int(within / 0.05)):
        if callable(predicate) and predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_restart_during_an_outage_keeps_sampling(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    config = load_config(
        write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state")
    )

    first = Gateway(config)
    run = asyncio.create_task(first.run())
    assert await _until(lambda: first.telemetry is not None and (config.state_dir / LINKS_FILE).exists(), 15)
    first.supervisor.stopping.set()
    assert await asyncio.wait_for(run, 15) == 0

    await lab_server.down()
    second = Gateway(config)
    run = asyncio.create_task(second.run())
    try:
        # the telemetry service starts on the saved links at once, though the server is unreachable
        assert await _until(lambda: second.telemetry is not None, 5)
        assert await _until(lambda: second.led_state() is LedState.NO_SERVER, 10)
    finally:
        second.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)
