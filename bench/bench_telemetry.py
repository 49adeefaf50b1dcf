"""Telemetry: bytes written to the state directory per simulated day, and CPU per simulated hour."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from app.client.clock import ServerClock
from app.client.identity import DeviceIdentity, sfdi_from_lfdi
from app.client.server import serve
from app.client.session import Session
from app.client.snapshot import ServerTree
from app.config import Config, ServerConfig, TelemetryConfig
from app.health import Health
from app.meter import ObservedMeter
from app.sep import parse, to_xml
from app.sep.dcap import DeviceCapability
from app.sep.metering_mirror import MirrorUsagePointList
from app.telemetry import TelemetryLinks, TelemetryService
from bench.common import Row, cpu_seconds
from hal.inverter import BatterySpec
from hal.meter import MeterReading
from wattsmart_lab.pki import generate
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter
from wattsmart_lab.timebase import SimulatedTimebase
from wattsmart_lab.tree import LabTree

T = TypeVar("T")

_START = datetime(2026, 3, 2, 0, 0, 5, tzinfo=UTC)
_LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
BUDGET_BYTES = 2_000_000


class _TreeUplink:
    """The lab server's resource tree called in-process, with no sockets: every byte this process
    writes during the run is then a byte written to the state directory."""

    def __init__(self, tree: LabTree, lfdi: str) -> None:
        self._tree = tree
        self._lfdi = lfdi

    def _path(self, href: str) -> str:
        path = self._tree.canonical(href)
        if path is None:
            raise LookupError(href)
        return path

    def _get(self, href: str, cls: type[T], params: dict[str, str]) -> T:
        obj = self._tree.get(self._path(href), params, self._lfdi)
        if obj is None:
            raise LookupError(href)
        return parse(cls, to_xml(obj))

    @property
    def tree(self) -> ServerTree:
        """What the poller's snapshot would hold: the DeviceCapability and our MirrorUsagePoints."""
        mups = self._get("/mup", MirrorUsagePointList, {"l": "500"})
        return ServerTree(
            identity=DeviceIdentity(self._lfdi, sfdi_from_lfdi(self._lfdi)),
            device_capability=self._get("/dcap", DeviceCapability, {}),
            mirror_usage_point_list_href=self._tree.href("/mup"),
            mirror_usage_points=mups.MirrorUsagePoint,
        )

    async def refresh(self, href: str) -> ServerTree:
        return self.tree

    async def post(self, href: str, obj: object) -> str | None:
        reply = self._tree.post(self._path(href), to_xml(obj), self._lfdi)
        if reply.status >= 400:
            raise RuntimeError(f"POST {href}: {reply.status}")
        return reply.location

    async def put(self, href: str, obj: object) -> None:
        reply = self._tree.put(self._path(href), to_xml(obj))
        if reply.status >= 400:
            raise RuntimeError(f"PUT {href}: {reply.status}")


def _links(tree: LabTree, edev: str) -> TelemetryLinks:
    der = f"{edev}/der/0"
    return TelemetryLinks(tree.href("/mup"), f"{der}/dercap", f"{der}/derg", f"{der}/ders")


def _wchar() -> int:
    """Bytes this process has passed to write() so far (/proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def _config(server: ServerConfig, state_dir: Path) -> Config:
    return Config(server=server, telemetry=TelemetryConfig(), state_dir=state_dir)


class _Meter:
    """A site meter in-process (the third mirrored point), read at the simulated time."""

    def __init__(self, clock: SimulatedTimebase) -> None:
        self._clock = clock

    async def read(self) -> MeterReading:
        return MeterReading(self._clock.now(), -850.0, 50.0)

    async def close(self) -> None:
        return None


async def simulated_day(post_rate: int, hours: int = 24, *, meter: bool = False) -> tuple[int, int, float]:
    """Run `hours` of simulated time in-process; return (bytes written, state dir size, CPU seconds).

    With `meter`, a site meter adds its MirrorUsagePoint (three points instead of two).
    """
    with tempfile.TemporaryDirectory() as tmp:
        clock = SimulatedTimebase(_START)
        tree = LabTree(clock.now, decoys=0)
        tree.post_rate = post_rate
        edev = tree.register(_LFDI)
        server = ServerConfig(
            dcap_url="https://127.0.0.1:1/dcap", ca_file=Path(tmp), cert_file=Path(tmp), key_file=Path(tmp)
        )
        state = Path(tmp) / "state"
        inverter = SimInverter(BatterySpec(), wall_clock=clock.now)
        service = TelemetryService(
            _config(server, state),
            inverter,
            _TreeUplink(tree, _LFDI),
            _links(tree, edev),
            clock,
            Health(),
            _LFDI,
            meter=ObservedMeter(_Meter(clock)) if meter else None,
        )
        task = asyncio.create_task(service.run())
        # the first hour creates the mirrors and settles the file; the day is measured after it
        await clock.run_for(3600)
        written, cpu = _wchar(), cpu_seconds()
        await clock.run_for(hours * 3600)
        written, cpu = _wchar() - written, cpu_seconds() - cpu
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        size = sum(p.stat().st_size for p in state.iterdir())
    return written, size, cpu


async def _tls_hour() -> float:
    """CPU seconds for a simulated hour over mutual TLS to the lab server (both ends in this process)."""
    with tempfile.TemporaryDirectory() as tmp:
        pki = generate(Path(tmp) / "pki")
        clock = SimulatedTimebase(_START)
        async with LabServer(pki, clock=clock.now) as lab:
            lfdi = lab.lfdi_of(pki.client("client"))
            edev = lab.tree.register(lfdi)
            config = _config(lab.client_config(), Path(tmp) / "state")
            session = Session(
                config.server,
                server_clock=ServerClock(clock.now),
                monotonic=clock.monotonic,
                sleep=clock.sleep,
                rng=random.Random(1),
            )
            async with serve(session) as http:
                clock.participants += 1  # the session's poller sleeps on the simulated clock too
                inverter = SimInverter(BatterySpec(), wall_clock=clock.now)
                service = TelemetryService(
                    config, inverter, http, _links(lab.tree, edev), clock, Health(), lfdi
                )
                task = asyncio.create_task(service.run())
                await clock.run_for(600)
                cpu = cpu_seconds()
                await clock.run_for(3600)
                cpu = cpu_seconds() - cpu
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return cpu


def run() -> list[Row]:
    """The telemetry figures for `make bench`."""
    logging.getLogger("app").setLevel(logging.WARNING)  # no log lines in the byte count
    rows: list[Row] = []
    for post_rate in (300, 60, 30):
        written, size, cpu = asyncio.run(simulated_day(post_rate))
        rows.append(
            Row(
                f"telemetry state-dir bytes written/day, postRate {post_rate} s",
                written / 1000,
                "kB",
                f"budget {BUDGET_BYTES // 1000} kB; file {size / 1000:.0f} kB; wchar over 2880 samples",
            )
        )
        if post_rate == 300:
            rows.append(
                Row(
                    "telemetry CPU per simulated hour (in-process server)",
                    cpu / 24,
                    "s",
                    "client + XML, no TLS",
                )
            )
    written, size, _ = asyncio.run(simulated_day(300, meter=True))
    rows.append(
        Row(
            "telemetry state-dir bytes written/day with a site meter, postRate 300 s",
            written / 1000,
            "kB",
            f"budget {BUDGET_BYTES // 1000} kB; file {size / 1000:.0f} kB; three mirrored points",
        )
    )
    rows.append(
        Row(
            "telemetry CPU per simulated hour over TLS",
            asyncio.run(_tls_hour()),
            "s",
            "client and lab server in one process, mutual TLS on 127.0.0.1",
        )
    )
    return rows
