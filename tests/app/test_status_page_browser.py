"""The installer's status page in a real browser (Debian's headless Chromium), at phone size, with live
values from a running gateway between the lab 2030.5 server and the SunSpec simulator.

Run by `make test-browser` (CI installs chromium); not part of `make test`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import load_config
from app.gateway import Gateway
from app.lab.gateway_config import write_lab_config
from app.lab.pki import Pki
from app.lab.server import LabServer
from hal.inverter.sunspec_server import SunSpecServer
from tests.app.conftest import free_port

pytestmark = pytest.mark.browser


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed (apt-get install chromium); make test-browser needs it")
    return path


async def _chromium_run(tmp_path: Path, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=390,844",  # a phone
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0
    return out


@pytest.fixture
async def status_port(tmp_path: Path, pki: Pki, lab_server: LabServer) -> AsyncIterator[int]:
    status_port = free_port()
    async with SunSpecServer() as battery:
        path = write_lab_config(
            tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state", status_port=status_port
        )
        gw = Gateway(load_config(path))
        task = asyncio.create_task(gw.run())
        try:
            yield status_port
        finally:
            gw.supervisor.stopping.set()
            await asyncio.wait_for(task, 15)


async def test_status_page_renders_live_values_on_a_phone(tmp_path: Path, status_port: int) -> None:
    url = f"http://127.0.0.1:{status_port}/"

    def api() -> dict[str, dict[str, object]]:
        with urllib.request.urlopen(url + "api/status", timeout=5) as reply:
            data: dict[str, dict[str, object]] = json.loads(reply.read())
            return data

    status: dict[str, dict[str, object]] = {}
    for _ in range(150):  # the listener, discovery and the first inverter read
        try:
            status = await asyncio.to_thread(api)
        except urllib.error.URLError:
            status = {}
        if status and status["server"]["registered"] and status["inverter"]["frequency Hz"] is not None:
            break
        await asyncio.sleep(0.1)
    assert status["server"]["registered"] is True
    assert status["inverter"]["frequency Hz"] is not None

    dom = (await _chromium_run(tmp_path, "--dump-dom", url)).decode()
    lfdi = str(status["identity"].get("lfdi") or status["identity"].get("LFDI"))
    assert lfdi in dom
    for field in ("registered", "frequency Hz", "state of charge %", "setpoint W", "gateway"):
        assert field in dom, field
    hz = dom.split('id="inverter.frequency Hz">', 1)[1].split("<", 1)[0]
    assert 55.0 < float(hz) < 65.0  # a live value from the simulator, not a placeholder
    assert "PRIVATE KEY" not in dom

    shot = tmp_path / "status.png"
    await _chromium_run(tmp_path, f"--screenshot={shot}", url)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (390, 844)
    assert len(png) > 20_000  # a rendered page, not a blank one
