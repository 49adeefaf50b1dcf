"""Fixtures for telemetry tests: a simulated clock, the lab server on it, the simulated battery."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.client.clock import ServerClock
from app.client.server import Server, serve
from app.client.session import Session
from app.config import Config, ServerConfig, TelemetryConfig
from app.telemetry import TelemetryLinks
from hal.inverter import BatterySpec
from tests.sep.conftest import assert_valid, assert_valid_csipaus, csipaus_schemas, sep_schema
from tests.telemetry.simclock import SimClock
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter

# the sep tests' schema fixtures, reused here
__all__ = ["assert_valid", "assert_valid_csipaus", "csipaus_schemas", "sep_schema"]

# Ten seconds before a minute boundary: the first sample is the :00 tick, not the start time.
START = datetime(2026, 3, 2, 9, 59, 50, tzinfo=UTC)


@pytest.fixture
def clock() -> SimClock:
    """Virtual server time starting at START."""
    return SimClock(START)


@pytest.fixture
async def lab(pki: Pki, clock: SimClock) -> AsyncIterator[LabServer]:
    """The lab 2030.5 server (TLS on 127.0.0.1) whose clock is the simulated one."""
    async with LabServer(pki, clock=clock.now) as server:
        server.tree.post_rate = 300
        yield server


@asynccontextmanager
async def polling(server: ServerConfig, clock: SimClock) -> AsyncIterator[Server]:
    """The gateway's 2030.5 session with its poller on the simulated clock (one more participant).

    The telemetry takes its MirrorUsagePoints from this poller's snapshots, as in the gateway.
    """
    server_clock = ServerClock(clock.now)
    session = Session(
        server, server_clock=server_clock, monotonic=clock.monotonic, sleep=clock.sleep, rng=random.Random(1)
    )
    async with serve(session) as port:
        clock.participants += 1
        try:
            yield port
        finally:
            clock.participants -= 1


@pytest.fixture
async def http(lab: LabServer, clock: SimClock) -> AsyncIterator[Server]:
    """The gateway's 2030.5 session to the lab server, polling on the simulated clock."""
    async with polling(lab.client_config(request_timeout_s=2.0), clock) as session:
        yield session


@dataclass(frozen=True)
class Device:
    """Who we are on the lab server and where our reports go."""

    lfdi: str
    index: int
    links: TelemetryLinks


@pytest.fixture
def device(lab: LabServer, pki: Pki) -> Device:
    """Our EndDevice on the lab server and the telemetry links a discovery would find."""
    lfdi = lab.lfdi_of(pki.client("client"))
    index = next(d.index for d in lab.tree.devices if d.lfdi == lfdi)
    der = f"/edev/{index}/der/0"
    links = TelemetryLinks(
        mirror_usage_points=lab.tree.href("/mup"),
        der_capability=lab.tree.href(f"{der}/dercap"),
        der_settings=lab.tree.href(f"{der}/derg"),
        der_status=lab.tree.href(f"{der}/ders"),
    )
    return Device(lfdi, index, links)


@pytest.fixture
def make_config(lab: LabServer, tmp_path: Path) -> Callable[..., Config]:
    """A Config pointed at the lab, state in tmp_path; keyword arguments go to TelemetryConfig."""

    def make(**telemetry: object) -> Config:
        return Config(
            server=lab.client_config(request_timeout_s=2.0),
            telemetry=TelemetryConfig(**telemetry),  # type: ignore[arg-type]
            state_dir=tmp_path / "state",
        )

    return make


@pytest.fixture
def inverter(clock: SimClock) -> SimInverter:
    """The simulated battery, on the simulated clock."""
    return SimInverter(BatterySpec(), wall_clock=clock.now)
