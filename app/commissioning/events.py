"""The utility's controls in words for the status document: what is in force, what comes next.

Built from the control engine's plan (phases, effective start and end) and the server snapshot's
programs (the DERControl's description, its program and its modes). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app.control.model import Phase, Plan, ProgramView
from app.sep.der import DERControlBase

#: scheduled events listed after the ones in force
SCHEDULED_SHOWN = 4


def describe_action(base: DERControlBase) -> str:
    """What a control asks the battery to do, in words (W positive = discharge, as everywhere here)."""
    parts: list[str] = []
    if base.opModTargetW is not None:
        parts.append(_watts(base.opModTargetW.watts))
    if base.opModFixedW is not None:
        pct = base.opModFixedW / 100
        verb = "discharge at" if pct > 0 else "charge at" if pct < 0 else "hold at"
        limit = "maximum discharge" if pct > 0 else "maximum charge"
        parts.append(f"{verb} {abs(pct):g} % of its {limit} rate" if pct else "hold at 0 W")
    if base.opModMaxLimW is not None:
        parts.append(f"limit output to {base.opModMaxLimW / 100:g} % of its maximum")
    if base.opModConnect is not None:
        parts.append("stay connected" if base.opModConnect else "disconnect from the grid")
    if base.opModEnergize is not None:
        parts.append("stay energized" if base.opModEnergize else "de-energize")
    return "; ".join(parts) or "no power setting"


def _watts(w: float) -> str:
    if w > 0:
        return f"discharge {w:,.0f} W"
    if w < 0:
        return f"charge {-w:,.0f} W"
    return "hold at 0 W"


def describe_events(
    plan: Plan | None, programs: Sequence[ProgramView], *, shown: int = SCHEDULED_SHOWN
) -> list[dict[str, Any]]:
    """The events in force, then the next `shown` scheduled ones, each as a flat mapping in words."""
    if plan is None:
        return []
    controls = {c.mRID: (view, c) for view in programs for c in view.controls}
    program_names = {view.program.mRID: view.program.description for view in programs}
    active = sorted((s for s in plan.states.values() if s.phase is Phase.ACTIVE), key=lambda s: s.start)
    scheduled = sorted((s for s in plan.states.values() if s.phase is Phase.SCHEDULED), key=lambda s: s.start)
    out: list[dict[str, Any]] = []
    for state in active + scheduled[:shown]:
        found = controls.get(state.mrid)
        control = found[1] if found is not None else None
        out.append(
            {
                "mRID": state.mrid,
                "phase": state.phase.value,
                "description": control.description if control is not None else None,
                "program": program_names.get(state.program) or state.program,
                "action": describe_action(control.DERControlBase) if control is not None else None,
                "start": _iso(state.start),
                "end": _iso(state.end),
            }
        )
    return out


def describe_default(plan: Plan | None) -> str | None:
    """The DefaultDERControl the battery falls back to between events, in words (None: none)."""
    if plan is None or plan.default is None:
        return None
    default = plan.default
    name = default.description or default.mRID
    return f"{name}: {describe_action(default.DERControlBase)}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
