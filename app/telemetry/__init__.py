"""Telemetry: the 30-s sampler, mirror usage points, DER reports, and the outbox behind them.

Wiring (the supervisor):

    links = TelemetryLinks.from_tree(await session.wait_for(lambda t: bool(TelemetryLinks.from_tree(t))))
    telemetry = TelemetryService(config, inverter, session, links, ServerTimebase(session.now),
                                 supervisor.health, session.identity.lfdi)
    supervisor.add("telemetry", telemetry.run, max_silence_s=120)   # beats "telemetry" every 30 s
    supervisor.on_shutdown("telemetry outbox", telemetry.flush)
    # on every new snapshot: telemetry.update_links(TelemetryLinks.from_tree(tree))
    #   (the links carry the default control's setGradW, which DERSettings reports)

Health parts: "telemetry" (beat), "telemetry.inverter" and "telemetry.server" (problem/ok).
State: one sqlite file in config.state_dir (app.store), owned by one process at a time.
"""

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
