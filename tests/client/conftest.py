"""Client test helpers: a simulated clock whose sleep advances time instead of waiting."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from app.client.backoff import Backoff
from app.client.clock import ServerClock
from app.client.discovery import Discovery
from app.client.http import HttpClient
from app.client.identity import identity_of_pem_file
from app.client.poller import Poller
from app.config import ServerConfig
from app.health import Health
from app.lab.pki import Pki
from app.lab.server import LabServer

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class SimulationOver(Exception):
    """Raised by FakeTime.sleep once the simulated horizon is reached."""


@dataclass
class FakeTime:
    """Monotonic seconds, the matching UTC wall clock, and a sleep that only moves time on."""

    t: float = 0.0
    horizon: float = float("inf")
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.t

    def utc(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.t + seconds > self.horizon:
            self.t = self.horizon
            raise SimulationOver
        self.t += seconds
        await asyncio.sleep(0)


@dataclass
class Rig:
    """A client pipeline (HTTP, discovery, poller) on simulated time against a lab server."""

    server: LabServer
    time: FakeTime
    http: HttpClient
    clock: ServerClock
    discovery: Discovery
    poller: Poller
    health: Health

    async def run_until(self, horizon: float) -> None:
        """Run the poll loop until simulated time reaches `horizon` seconds."""
        self.time.horizon = horizon
        with pytest.raises(SimulationOver):
            await self.poller.run()

    def gets(self, path: str) -> list[float]:
        """Simulated times (s since T0) of the GETs of `path`."""
        return [
            (r.at - T0 - self.server.tree.time_offset).total_seconds()
            for r in self.server.requests
            if r.method == "GET" and r.path == path
        ]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def sim_server(pki: Pki, fake_time: FakeTime) -> AsyncIterator[LabServer]:
    """A lab server whose clock is the simulated clock."""
    async with LabServer(pki, clock=fake_time.utc) as server:
        yield server


@pytest.fixture
def make_rig(fake_time: FakeTime) -> Callable[..., AbstractAsyncContextManager[Rig]]:
    """`async with make_rig(server, **server_config_overrides) as rig:` builds a simulated client."""

    @asynccontextmanager
    async def make(server: LabServer, seed: int = 1, **overrides: object) -> AsyncIterator[Rig]:
        cfg: ServerConfig = server.client_config(**{"request_timeout_s": 2.0, **overrides})
        rng = random.Random(seed)
        clock = ServerClock(fake_time.utc)
        health = Health(clock=fake_time.monotonic)
        async with HttpClient(cfg) as http:
            discovery = Discovery(
                http,
                cfg.dcap_url,
                identity_of_pem_file(cfg.cert_file),
                clock,
                monotonic=fake_time.monotonic,
                rng=rng,
                default_poll_rate_s=cfg.default_poll_rate_s,
            )
            poller = Poller(
                discovery,
                Backoff(cap_s=cfg.max_backoff_s, rng=rng),
                health,
                monotonic=fake_time.monotonic,
                sleep=fake_time.sleep,
            )
            yield Rig(server, fake_time, http, clock, discovery, poller, health)

    return make
