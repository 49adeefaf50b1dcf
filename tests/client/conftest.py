"""Client fixtures: a simulated clock, a lab server on it, and a client pipeline built on both."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from app.client.backoff import Backoff
from app.client.clock import ServerClock
from app.client.discovery import Discovery
from app.client.http import HttpClient
from app.client.identity import identity_of_pem_file
from app.client.poller import Poller
from app.config import ServerConfig
from app.health import Health
from tests.client.sim import FakeTime, Rig
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer


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
        server_clock = ServerClock(fake_time.utc)
        health = Health(monotonic=fake_time.monotonic)
        async with HttpClient(cfg) as http:
            discovery = Discovery(
                http,
                cfg.dcap_url,
                identity_of_pem_file(cfg.cert_file),
                server_clock,
                monotonic=fake_time.monotonic,
                rng=rng,
                default_poll_rate_s=cfg.default_poll_rate_s,
                min_rate_s=cfg.min_rate_s,
                max_rate_s=cfg.max_rate_s,
            )
            poller = Poller(
                discovery,
                Backoff(cap_s=cfg.max_backoff_s, rng=rng),
                health,
                monotonic=fake_time.monotonic,
                sleep=fake_time.sleep,
            )
            yield Rig(server, fake_time, http, server_clock, discovery, poller, health)

    return make
