"""The whole gateway as systemd runs it: a subprocess with NOTIFY_SOCKET and WATCHDOG_USEC, between the
lab 2030.5 server (mutual TLS) and the SunSpec battery simulator (Modbus TCP), all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from wattsmart_lab.gateway_config import free_port, write_lab_config
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer


class Notifications:
    """The receiving end of NOTIFY_SOCKET: what systemd would see, with arrival times."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.path = path
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    async def wait_for(self, text: str, within: float) -> float:
        for _ in range(int(within / 0.02)):
            self.drain()
            for at, message in self.messages:
                if text in message:
                    return at
            await asyncio.sleep(0.02)
        raise AssertionError(f"{text!r} not received; got {[m for _, m in self.messages]}")


async def test_ready_watchdog_control_and_clean_stop(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    status_port = free_port()
    client = pki.client("client")
    config = write_lab_config(
        tmp_path / "gateway.yaml",
        lab_server,
        battery.port,
        tmp_path / "state",
        status_port=status_port,
        inverter={"timeout_s": 0.5},
        log_level="INFO",
    )
    # scheduled before the gateway starts, so its first discovery walk reads it
    tree = lab_server.tree
    start = tree.now().replace(microsecond=0) + timedelta(seconds=6)
    control = tree.add_control(1, start=start, duration=60, target_w=-2000.0)
    notify = Notifications(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="2000000")
    env.pop("WATCHDOG_PID", None)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "run",
        "--config",
        str(config),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready_at = await notify.wait_for("READY=1", within=15)
        # start -> READY includes the interpreter's start-up; the bench reports the figure
        assert ready_at - started < 15
        await notify.wait_for("WATCHDOG=1", within=5)

        # The control scheduled before start-up reaches the battery's registers.
        for _ in range(400):
            if battery.device.get(704, "WSetEna") == 1:
                break
            await asyncio.sleep(0.05)
        assert battery.device.get(704, "WSetEna") == 1
        assert battery.device.battery.target_w == pytest.approx(-2000, abs=10)
        statuses = {r.status for r in tree.responses if r.subject == control.mRID}
        assert 1 in statuses

        # The status page shows it, as JSON and as a page, with no secrets.
        def fetch(path: str) -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{status_port}{path}", timeout=5) as reply:
                return bytes(reply.read())

        status = json.loads(await asyncio.to_thread(fetch, "/api/status"))
        assert status["server"]["registered"] is True
        assert status["control"]["setpoint W"] == pytest.approx(-2000, abs=10)
        page = (await asyncio.to_thread(fetch, "/")).decode()
        assert "LFDI" in page or "lfdi" in page
        assert "PRIVATE KEY" not in page
        key_body = client.key.read_text().splitlines()[1]
        assert key_body not in page

        # SIGTERM: released battery, exit 0, well inside systemd's stop timeout.
        proc.send_signal(signal.SIGTERM)
        stop_started = time.monotonic()
        code = await asyncio.wait_for(proc.wait(), 10)
        assert code == 0
        assert time.monotonic() - stop_started < 10
        assert battery.device.get(704, "WSetEna") == 0
        await notify.wait_for("STOPPING=1", within=1)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        notify.sock.close()
    assert "Traceback" not in stderr, stderr
