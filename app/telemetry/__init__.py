"""Telemetry: the 30-s sampler, mirror usage points, DER reports, and the outbox behind them.

Wiring (app/gateway.py, once the box has an LFDI):

    # the links saved from the last run, else the first snapshot with DER or mirror links
    telemetry = TelemetryService(config, inverter, link, links, ServerTimebase(link.now),
                                 health, lfdi, rng=rng)
    supervisor.add("telemetry", run_telemetry, MAX_SILENCE_S)   # 120 s; beats "telemetry" every 30 s
    # on every new snapshot: telemetry.update_links(TelemetryLinks.from_tree(tree))
    #   (the links carry the default control's setGradW, which DERSettings reports)

No shutdown hook: cancelled, `run()` lets go of the store, and the store's last user (the gateway,
after the parts) commits the staged readings as it closes; `flush()` commits them at any other moment.

Health parts: "telemetry" (beat), "telemetry.inverter" and "telemetry.server" (problem/ok).
State: one sqlite file in config.state_dir (app.store), owned by one process at a time.
"""

from __future__ import annotations

from app.telemetry.links import TelemetryLinks
from app.telemetry.points import FREQUENCY, POINTS, POWER, DataPoint
from app.telemetry.service import TelemetryService
from app.telemetry.timebase import ServerTimebase, Timebase

__all__ = [
    "FREQUENCY",
    "POINTS",
    "POWER",
    "DataPoint",
    "ServerTimebase",
    "TelemetryLinks",
    "TelemetryService",
    "Timebase",
]
