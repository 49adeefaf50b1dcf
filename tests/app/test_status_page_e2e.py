"""The status page of a whole gateway in-process (lab 2030.5 server over mutual TLS, SunSpec simulator over
Modbus TCP, all on 127.0.0.1): the control in words in /api/status, the live history, the page."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from app.config import load_config
from app.gateway import Gateway
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer


async def _until_active(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for _ in range(300):
        async with http.get(url + "api/status") as reply:
            status = await reply.json()
        if any(e["phase"] == "active" for e in status["control"]["events"]):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"no event in force: {status['control']}")


async def test_the_gateway_tells_its_events_in_words_and_keeps_a_history(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    tree = lab_server.tree
    now = tree.now().replace(microsecond=0)
    active = tree.add_control(1, start=now - timedelta(seconds=2), duration=900, target_w=-2000.0)
    later = tree.add_control(1, start=now + timedelta(hours=2), duration=3600, fixed_w=2500)
    path = write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state")
    gw = Gateway(load_config(path))
    run = asyncio.create_task(gw.run())
    try:
        for _ in range(100):
            if gw.status_page is not None:
                break
            await asyncio.sleep(0.05)
        assert gw.status_page is not None
        url = gw.status_page.url
        async with aiohttp.ClientSession() as http:
            status = await _until_active(http, url)
            events = {e["mRID"]: e for e in status["control"]["events"]}
            assert events[active.mRID] == {
                "mRID": active.mRID,
                "phase": "active",
                "description": active.description,
                "program": events[active.mRID]["program"],
                "action": "charge 2,000 W",
                "start": (now - timedelta(seconds=2)).isoformat(),
                "end": (now + timedelta(seconds=898)).isoformat(),
            }
            assert events[active.mRID]["program"]  # the program's description, not an mRID
            assert events[later.mRID]["phase"] == "scheduled"
            assert events[later.mRID]["action"] == "discharge at 25 % of its maximum discharge rate"
            # the sampler took its first sample from the status as the page came up
            async with http.get(url + "api/history?hours=1") as reply:
                history = await reply.json()
            assert history["count"] >= 1 and abs(history["t"][0] - time.time()) < 60
            async with http.get(url) as reply:
                page = await reply.text()
            assert f"{active.description}: charge 2,000 W" in page
            assert f"{later.description}: discharge at 25 %" in page
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 15)
