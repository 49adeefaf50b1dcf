"""The simulated clock the telemetry tests run on (it lives in app.telemetry.timebase)."""

from __future__ import annotations

from wattsmart_lab.timebase import SimulatedTimebase as SimClock

__all__ = ["SimClock"]
