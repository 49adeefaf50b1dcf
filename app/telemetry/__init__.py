"""Telemetry: the 30-s sampler, mirror usage points, DER reports, and the outbox behind them."""

from __future__ import annotations

from app.telemetry.points import FREQUENCY, POINTS, POWER, DataPoint
from app.telemetry.service import TelemetryService
from app.telemetry.timebase import ServerTimebase, Timebase
from app.telemetry.uplink import TelemetryLinks, Uplink

__all__ = [
    "FREQUENCY",
    "POINTS",
    "POWER",
    "DataPoint",
    "ServerTimebase",
    "TelemetryLinks",
    "TelemetryService",
    "Timebase",
    "Uplink",
]
