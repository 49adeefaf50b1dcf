"""DER control engine: scheduler cost at 100 programs × 50 controls, and start -> setpoint latency."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.config import Config, ControlConfig, ServerConfig
from app.control.engine import ControlEngine
from app.control.schedule import EventRecord, ProgramControls, evaluate
from app.sep.der import DefaultDERControl, DERControl, DERControlBase, DERProgram
from app.sep.event import EventStatus
from app.sep.types import ActivePower, DateTimeInterval
from bench.common import Row
from hal.clock import utc_now
from hal.inverter.battery import BatterySpec
from wattsmart_lab.sim import SimInverter

_NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
_PROGRAMS = 100
_CONTROLS = 50
_LATENCY_EVENTS = 6


def _control(p: int, n: int, start: datetime, duration: int) -> DERControl:
    base = (
        DERControlBase(opModFixedW=-5000 + n * 10, rampTms=600)
        if n % 2
        else DERControlBase(opModTargetW=ActivePower.from_watts(4000 + n), opModConnect=True)
    )
    return DERControl(
        replyTo="/rsps/1/rsp",
        responseRequired=3,
        mRID=f"{p:012X}{n:012X}0000A4F1",
        creationTime=_NOW - timedelta(minutes=p),
        EventStatus=EventStatus(currentStatus=0, dateTime=_NOW, potentiallySuperseded=False),
        interval=DateTimeInterval(duration=duration, start=start),
        randomizeStart=60,
        randomizeDuration=30,
        DERControlBase=base,
    )


def programs() -> list[ProgramControls]:
    """100 programs of 50 half-hour controls each; programs overlap one another, as a busy server's would."""
    out = []
    for p in range(_PROGRAMS):
        prog = DERProgram(mRID=f"{p:024X}0000A4F1", primacy=p % 3)
        first = _NOW - timedelta(hours=6) + timedelta(minutes=7 * p)
        controls = tuple(_control(p, n, first + timedelta(minutes=30 * n), 1800) for n in range(_CONTROLS))
        default = DefaultDERControl(mRID=f"D{p:023X}0000A4F1", DERControlBase=DERControlBase(opModFixedW=0))
        out.append(ProgramControls(prog, controls, default))
    return out


def _scheduler_rows() -> list[Row]:
    progs = programs()
    rng = random.Random(1)
    started = time.perf_counter()
    plan = evaluate(progs, {}, _NOW, rng)
    first_ms = (time.perf_counter() - started) * 1000
    records: dict[str, EventRecord] = {r.mrid: r for r in plan.records}
    timings = []
    for step in range(20):
        now = _NOW + timedelta(seconds=37 * step)
        started = time.perf_counter()
        plan = evaluate(progs, records, now, rng)
        timings.append((time.perf_counter() - started) * 1000)
        records.update((r.mrid, r) for r in plan.records)
    count = _PROGRAMS * _CONTROLS
    return [
        Row("control: schedule 100×50, first evaluation", first_ms, "ms", f"{count} new events, all drawn"),
        Row(
            "control: schedule 100×50, evaluation",
            statistics.median(timings),
            "ms",
            f"median of 20 with records kept (best {min(timings):.1f} ms)",
        ),
    ]


class _Link:
    """The session's part the engine uses: server time is ours, programs come through update()."""

    tree = None

    def now(self) -> datetime:
        return utc_now()

    async def snapshots(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None

    async def post(self, href: str, obj: object) -> None:
        """Take every response."""


class _Recording(SimInverter):
    def __init__(self) -> None:
        super().__init__(BatterySpec(), revert_timeout_s=300.0)
        self.writes: list[tuple[datetime, float]] = []

    async def set_active_power(self, watts: float) -> float:
        held = await super().set_active_power(watts)
        self.writes.append((utc_now(), watts))
        return held


async def _latency_ms(state_dir: Path) -> list[float]:
    server = ServerConfig(
        dcap_url="https://127.0.0.1:1/dcap", ca_file=state_dir, cert_file=state_dir, key_file=state_dir
    )
    config = Config(server=server, state_dir=state_dir, control=ControlConfig())
    inverter = _Recording()
    engine = ControlEngine(config, inverter, _Link(), "00" * 20, rng=random.Random(1))
    first = utc_now() + timedelta(seconds=0.5)
    starts = [first + timedelta(seconds=1.2 * n) for n in range(_LATENCY_EVENTS)]
    controls = tuple(
        DERControl(
            replyTo="/rsps/1/rsp",
            responseRequired=3,
            mRID=f"{n + 1:024X}0000A4F1",
            creationTime=_NOW,
            EventStatus=EventStatus(currentStatus=0, dateTime=_NOW, potentiallySuperseded=False),
            # 1 s events 1.2 s apart: a gap (default -> release) between each pair
            interval=DateTimeInterval(duration=1, start=start),
            DERControlBase=DERControlBase(opModFixedW=1000 + 100 * n),
        )
        for n, start in enumerate(starts)
    )
    engine.update([ProgramControls(DERProgram(mRID="AB" * 16, primacy=1), controls)])
    task = asyncio.create_task(engine.run())
    await asyncio.sleep((starts[-1] - utc_now()).total_seconds() + 0.3)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await engine.stop()
    out = []
    for n, start in enumerate(starts):
        watts = round((1000 + 100 * n) / 10000 * 5000, 1)
        written = next(t for t, w in inverter.writes if w == watts)
        out.append((written - start).total_seconds() * 1000)
    return out


def _latency_rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        latencies = asyncio.run(_latency_ms(Path(folder)))
    return [
        Row(
            "control: start -> setpoint, median",
            statistics.median(latencies),
            "ms",
            f"{len(latencies)} events, sim inverter, sqlite ledger",
        ),
        Row("control: start -> setpoint, max", max(latencies), "ms", "requirement: < 1000 ms"),
    ]


def run() -> list[Row]:
    """Scheduler cost and start -> setpoint latency."""
    return _scheduler_rows() + _latency_rows()
