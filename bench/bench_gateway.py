"""End to end: the gateway as a process between the lab 2030.5 server and the SunSpec simulator.

Figures held against the targets in DEVELOPERS.md: start → READY, setpoint written after an event's
effective start, steady RSS, CPU per hour (extrapolated from a steady window at the utility's
cadence), and bytes the gateway writes per day (all writes, sockets included: an upper bound for
flash; the telemetry bench isolates the state folder). The window defaults to 120 s;
BENCH_GATEWAY_SECONDS changes it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from bench.common import Row
from wattsmart_lab import pki as lab_pki
from wattsmart_lab.gateway_config import free_port, write_lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

WINDOW_S = float(os.environ.get("BENCH_GATEWAY_SECONDS", "120"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _proc_wchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return len(reply.read())


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def _wait_ready(sock: socket.socket, within: float) -> float:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            await asyncio.sleep(0.002)
            continue
        if b"READY=1" in data:
            return loop.time()
    raise RuntimeError("the gateway did not report READY")


async def _drain(sock: socket.socket) -> None:
    """Read what the gateway sends to the notify socket, as systemd would."""
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            await asyncio.sleep(0.5)


async def _measure() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pki = await asyncio.to_thread(lab_pki.generate, tmp / "pki")
        async with LabServer(pki) as server, SunSpecServer() as battery:
            server.tree.post_rate = 300  # the utility's MirrorUsagePoint postRate
            status_port = free_port()
            config = write_lab_config(
                tmp / "gateway.yaml",
                server,
                battery.port,
                tmp / "state",
                log_level="WARNING",
                status_port=status_port,
            )
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(str(tmp / "notify.sock"))
            notify.setblocking(False)
            env = dict(os.environ, NOTIFY_SOCKET=str(tmp / "notify.sock"), WATCHDOG_USEC="30000000")
            loop = asyncio.get_running_loop()
            drain: asyncio.Task[None] | None = None
            started = loop.time()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", "run", "--config", str(config), env=env
            )
            try:
                ready = await _wait_ready(notify, 30)
                drain = asyncio.create_task(_drain(notify))
                latencies = await _setpoint_latencies(server, battery)
                await asyncio.sleep(10)  # settle: discovery, MUP creation, first reports
                cpu0, wchar0, dir0 = _proc_cpu_s(proc.pid), _proc_wchar(proc.pid), _dir_bytes(tmp / "state")
                t0 = time.monotonic()
                await asyncio.sleep(WINDOW_S)
                elapsed = time.monotonic() - t0
                cpu = _proc_cpu_s(proc.pid) - cpu0
                wchar = _proc_wchar(proc.pid) - wchar0
                grown = _dir_bytes(tmp / "state") - dir0
                rss_mb = _proc_kib(proc.pid, "VmRSS") / 1024
                hwm_mb = _proc_kib(proc.pid, "VmHWM") / 1024
                # the status page's application loads at its first visit: what a visit leaves behind
                page_bytes = await asyncio.to_thread(_get, f"http://127.0.0.1:{status_port}/")
                await asyncio.sleep(2)
                visited_mb = _proc_kib(proc.pid, "VmRSS") / 1024
                proc.send_signal(signal.SIGTERM)
                stop0 = time.monotonic()
                await asyncio.wait_for(proc.wait(), 15)
                stop_s = time.monotonic() - stop0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                if drain is not None:
                    drain.cancel()
                notify.close()
    per_day = 86400 / elapsed
    return [
        Row(
            "gateway: start -> READY", (ready - started) * 1000, "ms", "target <= 2000 ms (incl. interpreter)"
        ),
        Row(
            "gateway: event start -> setpoint written",
            statistics.median(latencies),
            "ms",
            f"median of {len(latencies)}, max {max(latencies):.0f} ms; target <= 250 ms; py20305 200-900 ms",
        ),
        Row(
            "gateway: steady RSS",
            rss_mb,
            "MB",
            f"peak {hwm_mb:.1f} MB; target <= 45 (stretch 40); py20305 86 MB",
        ),
        Row(
            "gateway: RSS after a status page visit",
            visited_mb,
            "MB",
            f"its application loads at the first visit ({page_bytes / 1000:.0f} kB page); stays loaded",
        ),
        Row(
            "gateway: CPU per hour",
            cpu * 3600 / elapsed,
            "s/h",
            f"from a {elapsed:.0f} s window; target <= 7",
        ),
        Row(
            "gateway: all bytes written per day",
            wchar * per_day / 1e6,
            "MB/day",
            "sockets included (upper bound)",
        ),
        Row(
            "gateway: state folder growth per day", grown * per_day / 1e6, "MB/day", "file sizes; target <= 2"
        ),
        Row("gateway: SIGTERM -> exit", stop_s * 1000, "ms", "battery released first; limit 10 s"),
    ]


async def _setpoint_latencies(server: LabServer, battery: SunSpecServer, events: int = 5) -> list[float]:
    """Schedule back-to-back events and time each first write of the new target on the simulator."""
    tree = server.tree
    # DERControlList is polled every 60 s (the lab's DERProgram pollRate): schedule beyond that
    base = tree.now().replace(microsecond=0) + timedelta(seconds=65)
    targets = [(-1000.0 - 250 * i) if i % 2 == 0 else (1000.0 + 250 * i) for i in range(events)]
    for i, watts in enumerate(targets):
        tree.add_control(1, start=base + timedelta(seconds=4 * i), duration=4, target_w=watts)
    # The lab server's clock is the wall clock: wait for each effective start and watch the register.
    out: list[float] = []
    for i, watts in enumerate(targets):
        start_wall = (base + timedelta(seconds=4 * i)).timestamp()
        while True:
            now = time.time()
            current = battery.device.battery.target_w
            if now >= start_wall and current is not None and abs(current - watts) < 50:
                out.append((now - start_wall) * 1000)
                break
            if now > start_wall + 3:
                out.append(3000.0)  # missed: counted as 3 s so it shows
                break
            await asyncio.sleep(0.001)
    return out


def run() -> list[Row]:
    """The end-to-end figures."""
    return asyncio.run(_measure())
