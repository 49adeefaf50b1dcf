"""app.sep codec beside py20305's xsdata-pydantic bindings, on the same documents in the same run."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.sep import parse, to_xml
from app.sep.der import DERControl, DERControlBase, DERControlList
from app.sep.event import EventStatus
from app.sep.metering_mirror import MirrorMeterReading, MirrorMeterReadingList, Reading
from app.sep.types import ActivePower, DateTimeInterval
from bench.common import Row, ops_per_second

_NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def _control(n: int) -> DERControl:
    base = (
        DERControlBase(opModFixedW=-5000 + n, rampTms=600)
        if n % 2
        else DERControlBase(opModTargetW=ActivePower.from_watts(4000 + n), opModConnect=True)
    )
    return DERControl(
        href=f"/derp/1/derc/{n}",
        replyTo="/rsps/1/rsp",
        responseRequired=3,
        mRID=f"{0xC000 + n:024X}0000A4F1",
        description=f"Control {n}",
        version=0,
        creationTime=_NOW,
        EventStatus=EventStatus(currentStatus=0, dateTime=_NOW, potentiallySuperseded=False),
        interval=DateTimeInterval(duration=1800, start=_NOW + timedelta(minutes=30 * n)),
        randomizeStart=60,
        DERControlBase=base,
    )


def control_list(count: int = 50) -> DERControlList:
    """A DERControlList of `count` back-to-back controls."""
    controls = tuple(_control(n) for n in range(count))
    return DERControlList(href="/derp/1/derc", all=count, results=count, DERControl=controls)


def meter_readings(count: int = 10) -> MirrorMeterReadingList:
    """`count` MirrorMeterReadings, each with one 30-second Reading."""
    readings = tuple(
        MirrorMeterReading(
            mRID=f"{0x11 + n:024X}0000A4F1",
            lastUpdateTime=_NOW + timedelta(seconds=30),
            Reading=Reading(value=-3200 + n, timePeriod=DateTimeInterval(duration=30, start=_NOW)),
        )
        for n in range(count)
    )
    return MirrorMeterReadingList(all=count, results=count, MirrorMeterReading=readings)


def _retained_kib(build: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        kept = build()
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return size / 1024


def run() -> list[Row]:
    """Parse a 50-control DERControlList and write 10 MirrorMeterReadings, ours and py20305's."""
    from py20305.models import sep as peer_models
    from py20305.xml.serialization import from_xml as peer_from_xml
    from py20305.xml.serialization import to_xml as peer_to_xml

    controls = to_xml(control_list(50))
    readings = meter_readings(10)
    readings_xml = to_xml(readings)
    peer_readings = peer_from_xml(readings_xml, peer_models.MirrorMeterReadingList)
    # Same work on both sides: the peer must really build all 50 controls and all 10 readings.
    if len(peer_from_xml(controls, peer_models.DercontrolList).dercontrol) != 50:
        raise RuntimeError("py20305 did not parse 50 controls")
    if len(peer_readings.mirror_meter_reading) != 10:
        raise RuntimeError("py20305 did not parse 10 mirror meter readings")

    ours_parse = ops_per_second(lambda: parse(DERControlList, controls))
    peer_parse = ops_per_second(lambda: peer_from_xml(controls, peer_models.DercontrolList))
    ours_write = ops_per_second(lambda: to_xml(readings))
    peer_write = ops_per_second(lambda: peer_to_xml(peer_readings))
    ours_kib = _retained_kib(lambda: parse(DERControlList, controls))
    peer_kib = _retained_kib(lambda: peer_from_xml(controls, peer_models.DercontrolList))
    doc = f"{len(controls)} B document"
    return [
        Row("sep: parse 50-control DERControlList", ours_parse, "ops/s", doc),
        Row("sep: parse 50-control DERControlList (py20305)", peer_parse, "ops/s", doc),
        Row("sep: parse ratio ours/py20305", ours_parse / peer_parse, "x"),
        Row("sep: write 10 MirrorMeterReadings", ours_write, "ops/s", f"{len(readings_xml)} B document"),
        Row("sep: write 10 MirrorMeterReadings (py20305)", peer_write, "ops/s", "adds xml decl, schemaVer"),
        Row("sep: write ratio ours/py20305", ours_write / peer_write, "x"),
        Row("sep: parsed 50-control list, memory", ours_kib, "KiB", "tracemalloc, models kept"),
        Row("sep: parsed 50-control list, memory (py20305)", peer_kib, "KiB", "tracemalloc, models kept"),
    ]
