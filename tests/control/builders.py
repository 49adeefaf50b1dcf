"""Small builders of real app.sep.der models for the control tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.control.schedule import ProgramControls
from app.sep.der import DefaultDERControl, DERControl, DERControlBase, DERProgram
from app.sep.event import EventStatus
from app.sep.types import ActivePower, DateTimeInterval

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REPLY = "/rsps/1/rsp"


def at(seconds: float) -> datetime:
    """T0 + seconds."""
    return T0 + timedelta(seconds=seconds)


def control(
    mrid: str,
    start: float,
    duration: int,
    *,
    fixed: int | None = None,
    target: tuple[int, int] | None = None,
    created: float = 0,
    status: int = 0,
    rand_start: int | None = None,
    rand_duration: int | None = None,
    required: int = 0x03,
    ramp: int | None = None,
    base: DERControlBase | None = None,
    reply_to: str | None = REPLY,
) -> DERControl:
    """A DERControl starting `start` s after T0; target = (value, multiplier)."""
    if base is None:
        target_w = ActivePower(value=target[0], multiplier=target[1]) if target else None
        base = DERControlBase(opModFixedW=fixed, opModTargetW=target_w, rampTms=ramp)
    return DERControl(
        mRID=mrid,
        replyTo=reply_to,
        responseRequired=required,
        creationTime=at(created),
        EventStatus=EventStatus(currentStatus=status, dateTime=at(created), potentiallySuperseded=False),
        interval=DateTimeInterval(start=at(start), duration=duration),
        randomizeStart=rand_start,
        randomizeDuration=rand_duration,
        DERControlBase=base,
    )


def program(
    primacy: int,
    *controls: DERControl,
    default: DERControlBase | None = None,
    grad: int | None = None,
    mrid: str | None = None,
) -> ProgramControls:
    """A DERProgram with its controls and (optionally) a default control."""
    prog = DERProgram(mRID=mrid or f"F{primacy:02d}", primacy=primacy)
    dflt = None
    if default is not None:
        dflt = DefaultDERControl(mRID=f"D{primacy:02d}", DERControlBase=default, setGradW=grad)
    return ProgramControls(prog, tuple(controls), dflt)
