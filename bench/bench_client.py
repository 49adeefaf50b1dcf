"""2030.5 client: requests per simulated hour at Wattsmart cadence, and CPU per request.

Cadence used (seconds): DeviceCapability 900, Time 900, EndDeviceList 300, FSA list 300,
DERProgramList 60 (so every DERControlList and ActiveDERControlList polls at 60), DERList 300,
MirrorUsagePointList 300. The lab tree has 2 FSAs and 3 DERPrograms, i.e. 8 lists at 60 s.
The lab server runs in the same process over real TLS on 127.0.0.1, so the CPU figure is client
and server together; an hour is simulated (no sleeping), the requests are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.client.backoff import Backoff
from app.client.clock import ServerClock
from app.client.discovery import Discovery
from app.client.http import HttpClient
from app.client.identity import identity_of_pem_file
from app.client.poller import Poller
from app.health import Health
from bench.common import Row, cpu_seconds
from wattsmart_lab.pki import generate
from wattsmart_lab.server import LabServer

_HOUR = 3600.0
_T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class _Stop(Exception):
    pass


class _SimTime:
    def __init__(self, horizon: float) -> None:
        self.t = 0.0
        self.horizon = horizon

    def monotonic(self) -> float:
        return self.t

    def utc(self) -> datetime:
        return _T0 + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        if self.t + seconds > self.horizon:
            raise _Stop
        self.t += seconds
        await asyncio.sleep(0)


async def _hour(folder: Path) -> tuple[int, int, float, float]:
    pki = generate(folder)
    sim = _SimTime(_HOUR)
    async with LabServer(pki, clock=sim.utc) as server:
        rates = server.tree.poll_rates
        rates.dcap, rates.tm, rates.edev, rates.fsa, rates.derp, rates.der, rates.mup = (
            900,
            900,
            300,
            300,
            60,
            300,
            300,
        )
        now = server.tree.now()
        for n in range(4):
            server.tree.add_control(1, start=now + timedelta(minutes=15 * n), duration=900, fixed_w=2000)
        cfg = server.client_config()
        rng = random.Random(1)
        clock = ServerClock(sim.utc)
        async with HttpClient(cfg) as http:
            discovery = Discovery(
                http,
                cfg.dcap_url,
                identity_of_pem_file(cfg.cert_file),
                clock,
                monotonic=sim.monotonic,
                rng=rng,
            )
            poller = Poller(
                discovery,
                Backoff(cap_s=300.0, rng=rng),
                Health(monotonic=sim.monotonic),
                monotonic=sim.monotonic,
                sleep=sim.sleep,
            )
            started = cpu_seconds()
            with contextlib.suppress(_Stop):
                await poller.run()
            cpu = cpu_seconds() - started
            # a walk with nothing due: the bookkeeping cost between polls
            idle_started = cpu_seconds()
            for _ in range(200):
                await discovery.walk()
            idle = (cpu_seconds() - idle_started) / 200
        requests = len(server.requests)
        not_modified = sum(1 for r in server.requests if r.status == 304)
    return requests, not_modified, cpu, idle


def run() -> list[Row]:
    """Simulate one hour against the lab server and report the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        requests, not_modified, cpu, idle = asyncio.run(_hour(Path(tmp)))
    return [
        Row("client: requests per simulated hour", requests, "req/h", "Wattsmart cadence, lab tree"),
        Row("client: share answered 304", 100.0 * not_modified / requests, "%", "conditional GET (ETag)"),
        Row("client: CPU per request", 1000.0 * cpu / requests, "ms", "client + lab server, TLS"),
        Row("client: CPU per walk, nothing due", 1e6 * idle, "us", "cached tree rebuild"),
    ]
