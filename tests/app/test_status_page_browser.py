"""The status page in a real browser (Debian's headless Chromium over the DevTools protocol), at phone
and laptop size, with live values from a running gateway between the lab 2030.5 server and the SunSpec
simulator, a utility event in force, and a day of history fed to the gateway's ring before it starts.

Run by `make test-browser` (CI installs chromium); not part of `make test`. The screenshots are kept as
CI artifacts in build/test-output/status-page/ (or $TEST_OUTPUT_DIR/status-page/), never committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.commissioning.history import CAPACITY, Sample
from app.config import load_config
from app.gateway import Gateway
from hal.gpio import PATTERNS, LedState
from tests.app.chromium import chromium
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

pytestmark = pytest.mark.browser

ARTIFACTS = (
    Path(os.environ.get("TEST_OUTPUT_DIR", Path(__file__).parents[2] / "build" / "test-output"))
    / "status-page"
)
SIZES = ((390, 844), (1280, 800))
#: the fed day: an event from -6 h for 2 h, a server outage from -12 h for 90 min
EVENT = (-6 * 3600, -4 * 3600)
OUTAGE = (-12 * 3600, -10.5 * 3600)


@dataclass
class Running:
    url: str
    gateway: Gateway
    fed: list[Sample]


def _day(now: float) -> list[Sample]:
    out = []
    waiting = 0
    for i in range(CAPACITY - 10):
        t = now - 24 * 3600 + 60 + i * 30
        ago = t - now
        event = EVENT[0] <= ago < EVENT[1]
        outage = OUTAGE[0] <= ago < OUTAGE[1]
        waiting = waiting + 2 if outage else max(waiting - 40, 0)
        power = 3000.0 if event else 1200.0 * ((i % 240) / 120 - 1)
        soc = 30 + 60 * abs((i % 1440) / 720 - 1)
        out.append(Sample(t, power, 3000.0 if event else None, soc, waiting, not outage, not outage, event))
    return out


@pytest.fixture
async def running(tmp_path: Path, pki: Pki, lab_server: LabServer) -> AsyncIterator[Running]:
    tree = lab_server.tree
    start = tree.now().replace(microsecond=0) - timedelta(seconds=5)
    tree.add_control(1, start=start, duration=1800, target_w=1500.0)  # in force from the first walk
    async with SunSpecServer() as battery:
        path = write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state")
        gw = Gateway(load_config(path))
        fed = _day(time.time())
        for sample in fed:
            assert gw.history.record(sample)
        task = asyncio.create_task(gw.run())
        try:
            for _ in range(100):  # port 0: wait for the listener to pick one
                if gw.status_page is not None and gw.status_page.port:
                    break
                await asyncio.sleep(0.05)
            assert gw.status_page is not None
            yield Running(gw.status_page.url, gw, fed)
        finally:
            gw.supervisor.stopping.set()
            await asyncio.wait_for(task, 15)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


async def _live_status(url: str) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for _ in range(200):  # the listener, discovery, the first inverter read and the control's plan
        try:
            status = await asyncio.to_thread(_get, url + "api/status")
        except urllib.error.URLError:
            status = {}
        events = status.get("control", {}).get("events") if status else None
        if (
            status
            and status["server"]["registered"]
            and status["inverter"]["frequency Hz"] is not None
            and any(e["phase"] == "active" for e in events or ())
        ):
            return status
        await asyncio.sleep(0.1)
    pytest.fail(f"the gateway did not register, read the inverter and take up the event: {status}")


def _shade(page: str, name: str) -> list[tuple[int, int]]:
    group = re.search(rf'data-shade="{name}">(.*?)</g>', page)
    assert group is not None, name
    return [(int(a), int(b)) for a, b in re.findall(r'data-start="(\d+)" data-end="(\d+)"', group.group(1))]


def _drawn(page: str, series: str) -> int:
    found = re.search(rf'data-series="{series}" data-n="(\d+)"', page)
    assert found is not None, series
    return int(found.group(1))


async def test_status_page_at_phone_and_laptop_size(tmp_path: Path, running: Running) -> None:
    url, fed = running.url, running.fed
    status = await _live_status(url)
    active = next(e for e in status["control"]["events"] if e["phase"] == "active")
    assert active["description"].startswith("lab control") and active["action"] == "discharge 1,500 W"
    fed_at = fed[0].t
    event_start = next(s.t for s in fed if s.event)
    outage_start = next(s.t for s in fed if not s.connected)

    history = await asyncio.to_thread(_get, url + "api/history?hours=24")
    assert len(running.gateway.history) > len(fed)  # the sampler went on from the fed day
    served = [t for t in history["t"] if t <= round(fed[-1].t, 1)]
    assert history["count"] <= CAPACITY and len(served) >= len(fed) - 2
    assert served == [round(s.t, 1) for s in fed][-len(served) :]  # served to 0.1 s
    assert history["event"][history["t"].index(round(event_start, 1))] is True

    async with chromium(tmp_path / "chromium-profile") as tab:
        for width, height in SIZES:
            before = (await asyncio.to_thread(_get, url + "api/status"))["led"]
            await tab.load(url, width, height)
            page = await tab.html()
            after = (await asyncio.to_thread(_get, url + "api/status"))["led"]
            assert tab.errors == [], tab.errors
            assert "PRIVATE KEY" not in page
            # the state in words, and the LED drawn from the very pattern the LED blinks
            led = LedState[re.search(r'data-led="(\w+)"', page).group(1)]  # type: ignore[union-attr]
            assert led.name in {before, after}  # the state the gateway was in as the page loaded
            pattern = PATTERNS[led]
            strip = [tuple(map(float, m)) for m in re.findall(r'data-on="([\d.]+)-([\d.]+)"', page)]
            assert strip == list(pattern.on)
            assert await tab.evaluate(
                "getComputedStyle(document.getElementById('led')).animationDuration"
            ) == (f"{pattern.period_s:g}s")
            # the event in force in words
            assert f"{active['description']}: discharge 1,500 W" in page
            # the charts hold the day fed, the live samples after it, the event and the outage
            in_window = sum(
                1 for s in running.gateway.history.since(time.time() - 24 * 3600) if s.t >= fed_at
            )
            assert len(fed) - 2 <= _drawn(page, "power") <= in_window + 1
            assert _drawn(page, "soc") >= len(fed) - 2
            assert any(a == round(event_start) for a, _ in _shade(page, "event"))
            assert any(a == round(outage_start) and b - a >= 3600 for a, b in _shade(page, "outage"))
            assert "<script" not in page
            png = await tab.screenshot(ARTIFACTS / f"status-{width}x{height}.png")
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
            assert struct.unpack(">II", png[16:24]) == (width, height)
            assert len(png) > 30_000  # a rendered page, not a blank one
            # the fields the JSON documents are all on the page, with live values
            hz = float(page.split('id="inverter.frequency Hz">', 1)[1].split("<", 1)[0])
            assert 55.0 < hz < 65.0

        # without JavaScript the essentials are all there
        await tab.load(url, 390, 844, scripts=False)
        page = await tab.html()
        assert re.search(r'id="state">(ok|degraded|fault)<', page)
        in_force = page.split('id="in-force">', 1)[1].split("</div></div>", 1)[0]
        assert active["description"] in in_force and "discharge 1,500 W" in in_force
        assert tab.errors == [], tab.errors
