"""1,100 idle connections to the status page of a gateway limited to 1,024 file descriptors: the
2030.5 session keeps polling and posting, a control starting mid-flood reaches the battery on time.

Slow (about 45 s): run with `make test-flood`; prints the gateway's RSS, descriptors and threads.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from wattsmart_lab.gateway_config import free_port, write_lab_config
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

REPO = Path(__file__).resolve().parents[2]
CONNECTIONS = 1100
FLOOD_S = 30.0


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _sample(pid: int) -> dict[str, int]:
    """RSS (KiB), peak RSS (KiB), threads and open file descriptors of `pid`, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    fields["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return fields


async def _listening(port: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the status page never listened")


@pytest.mark.slow
async def test_a_connection_flood_does_not_starve_the_2030_5_session_or_the_battery(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    tree = lab_server.tree
    tree.poll_rates.derp = 10  # the session reads the programs every 10 s (its minimum)
    tree.post_rate = 10
    status_port = free_port()
    config = write_lab_config(
        tmp_path / "gateway.yaml",
        lab_server,
        battery.port,
        tmp_path / "state",
        status_port=status_port,
        telemetry={"interval_s": 10},
        log_level="INFO",
    )
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink,
            preexec_fn=_limit_fds,
        )
    flood: asyncio.subprocess.Process | None = None
    try:
        await _listening(status_port, 15)
        await asyncio.sleep(12)  # discovery, first samples and posts
        idle = _sample(proc.pid)
        start = tree.now().replace(microsecond=0) + timedelta(seconds=15)
        control = tree.add_control(1, start=start, duration=120, target_w=-1500.0)
        seen = len(lab_server.requests)
        flood = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.app.flood",
            str(status_port),
            str(CONNECTIONS),
            str(FLOOD_S),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        peak = dict(idle)
        applied_after: float | None = None
        ended = time.monotonic() + FLOOD_S
        while time.monotonic() < ended:
            for key, value in _sample(proc.pid).items():
                peak[key] = max(peak[key], value)
            if applied_after is None and battery.device.get(704, "WSetEna") == 1:
                applied_after = (tree.now() - start).total_seconds()
            await asyncio.sleep(0.25)
        assert flood.stdout is not None
        flooded = (await asyncio.wait_for(flood.stdout.read(), 30)).decode().strip()
        during = lab_server.requests[seen:]
        assert proc.returncode is None, "the gateway died under the flood"
    finally:
        if flood is not None and flood.returncode is None:
            flood.kill()
            await flood.wait()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)
    text = log.read_text(errors="replace")
    print(f"\nflood: {CONNECTIONS} connections held open for {FLOOD_S:.0f} s ({flooded})")
    print(f"gateway before: RSS {idle['VmRSS']} KiB, {idle['fds']} fds, {idle['Threads']} threads")
    print(
        f"gateway under flood (peak): RSS {peak['VmRSS']} KiB (VmHWM {peak['VmHWM']} KiB), "
        f"{peak['fds']} fds, {peak['Threads']} threads; log {len(text.splitlines())} lines, {len(text)} bytes"
    )
    print(f"control starting mid-flood reached the battery {applied_after} s after its start")
    assert "Too many open files" not in text
    assert "Traceback" not in text, text[-3000:]
    assert peak["fds"] < 100
    polls = [r for r in during if r.method == "GET" and r.path.startswith("/derp")]
    posts = [r for r in during if r.method == "POST" and r.path.startswith("/mup/")]
    responses = [r for r in tree.responses if r.subject == control.mRID]
    assert len(polls) >= 2, "the session stopped polling"
    assert len(posts) >= 2, "the readings stopped"
    assert {1, 2} <= {r.status for r in responses}, "the event's responses were not posted"
    assert applied_after is not None and 0 <= applied_after < 2.0, applied_after
    assert len(text.splitlines()) < 200
