"""The DER control engine: a pure schedule of 2030.5 events and an executor that drives the battery.

Wiring (the supervisor):

    engine = ControlEngine(config, inverter, session, session.identity.lfdi, rng=rng, health=health)
    supervisor.add("control", engine.run, max_silence_s=90)
    supervisor.on_shutdown("release the battery", engine.stop)
"""

from app.control.engine import ControlEngine, ServerLink, ServerTreeView
from app.control.modes import PowerCommand
from app.control.schedule import (
    DueResponse,
    EventRecord,
    EventState,
    Phase,
    Plan,
    ProgramControls,
    ProgramView,
    evaluate,
)

__all__ = [
    "ControlEngine",
    "DueResponse",
    "EventRecord",
    "EventState",
    "Phase",
    "Plan",
    "PowerCommand",
    "ProgramControls",
    "ProgramView",
    "ServerLink",
    "ServerTreeView",
    "evaluate",
]
