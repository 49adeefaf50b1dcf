"""Telemetry: the 30-s sampler, mirror usage points, DER reports, and the outbox behind them.

Wiring (app/gateway.py, once the box is commissioned; app.telemetry.part):

    telemetry = TelemetryPart(config, inverter, server, health, lfdi, store, rng=rng, notices=notices)
    supervisor.add("telemetry", telemetry.run, MAX_SILENCE_S)   # 120 s; beats "telemetry" every 30 s
    supervisor.add("dispatch", telemetry.dispatch)
    # run(): a TelemetryService on the links saved from the last run (SavedLinks), else on the first
    #   snapshot with DER or mirror links; dispatch(): each new snapshot's TelemetryLinks (they carry
    #   the default control's setGradW, which DERSettings reports) to the service, and saved

`server` is the server port (`app.client.port.ServerPort`). No shutdown hook and no flush at
shutdown: cancelled, `run()` lets go of the store, and the gateway, the store's last user, commits the
staged readings as it closes it after the parts have stopped.

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
