"""Reading what the lab server received: readings per mirror, requests by kind and time."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime

from app.sep.metering_mirror import MirrorMeterReading, Reading
from app.telemetry import TelemetryService
from wattsmart_lab.server import LabServer


def received_readings(lab: LabServer) -> Iterator[tuple[int, int, Reading]]:
    """Every Reading the server received, as (MUP number, reading time in epoch seconds, Reading)."""
    for n, doc in lab.tree.readings:
        assert isinstance(doc, MirrorMeterReading)
        readings = [doc.Reading] if doc.Reading is not None else []
        for reading_set in doc.MirrorReadingSet:
            readings.extend(reading_set.Reading)
        for reading in readings:
            assert reading.timePeriod is not None
            yield n, int(reading.timePeriod.start.timestamp()), reading


def received_ticks(lab: LabServer) -> dict[int, Counter[int]]:
    """Per MUP number: how many times each reading time (epoch seconds) arrived."""
    out: dict[int, Counter[int]] = {}
    for n, tick, _ in received_readings(lab):
        out.setdefault(n, Counter())[tick] += 1
    return out


def times(lab: LabServer, method: str, path: str) -> list[datetime]:
    """Server times of the recorded requests with `method` on `path`."""
    return [r.at for r in lab.requests if r.method == method and r.path == path]


@asynccontextmanager
async def running(service: TelemetryService) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Run `service` as a task; on exit flush and cancel it (a clean shutdown)."""
    task = asyncio.create_task(service.run())

    async def stop() -> None:
        await service.flush()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    try:
        yield stop
    finally:
        if not task.done():
            await stop()
