"""Simulated time for client tests: a clock whose sleep advances time instead of waiting."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from app.client.clock import ServerClock
from app.client.discovery import Discovery
from app.client.http import HttpClient
from app.client.poller import Poller
from app.health import Health
from wattsmart_lab.server import LabServer

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
    server_clock: ServerClock
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
