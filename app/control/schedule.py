"""The pure DER event scheduler (2030.5-2018 §12.1.3): programs, records, now, rng -> a Plan.

No I/O, no clock, no sleeping. Everything that must outlive one evaluation (random draws, the
moment an event was first seen, the milestones it reached) is an `EventRecord`, returned when
new or changed so the caller can persist it and hand it back next time, also after a restart.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from app.control.model import (
    MISSED,
    PHASE_OF_TERMINAL,
    TERMINAL,
    DueResponse,
    EventRecord,
    EventState,
    Phase,
    Plan,
    ProgramControls,
    ProgramView,
)
from app.control.modes import (
    DEFAULT_SOURCE,
    MODES_IN_COMMAND,
    PowerCommand,
    addressed_to_us,
    classify_modes,
    combine,
    default_grad,
)
from app.sep.der import DefaultDERControl, DERControl, DERControlBase, InvalidDERControl
from app.sep.event import CurrentStatus
from app.sep.response import ResponseRequired, ResponseStatus

# Re-exported: callers build inputs and read outputs from here.
__all__ = [
    "MISSED",
    "DueResponse",
    "EventRecord",
    "EventState",
    "Phase",
    "Plan",
    "ProgramControls",
    "ProgramView",
    "default_control",
    "evaluate",
    "new_record",
    "normal_mrid",
    "to_datetime",
]

_RECEIVED: Final = ResponseStatus.EVENT_RECEIVED
_STARTED: Final = ResponseStatus.EVENT_STARTED
_COMPLETED: Final = ResponseStatus.EVENT_COMPLETED
_CANCELLED: Final = ResponseStatus.EVENT_CANCELLED
_SUPERSEDED: Final = ResponseStatus.EVENT_SUPERSEDED
_EXPIRED: Final = ResponseStatus.REJECTED_EXPIRED
# Events that really ran (or would have) still occupy their window for later arrivals.
_OCCUPYING_TERMINAL: Final = frozenset({_COMPLETED, MISSED})


@dataclass(slots=True)
class _Event:
    control: DERControl
    static: _Static
    program: ProgramView
    record: EventRecord
    start: float
    end: float
    categories: frozenset[str] = frozenset()
    cancel_ends: bool = False
    superseded_ends: bool = False
    new: set[int] = field(default_factory=set)
    phase: Phase = Phase.SCHEDULED


class _Union:
    """A union of half-open [start, end) windows as sorted disjoint intervals."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def first_overlap(self, start: float, end: float) -> float | None:
        """The first instant of [start, end) inside the union, or None (back-to-back is no overlap)."""
        if start >= end:
            return None
        i = bisect.bisect_right(self.starts, start) - 1
        if i >= 0 and self.ends[i] > start:
            return start
        if i + 1 < len(self.starts) and self.starts[i + 1] < end:
            return self.starts[i + 1]
        return None

    def add(self, start: float, end: float) -> None:
        """Add [start, end), merging with what it touches."""
        if start >= end:
            return
        lo = bisect.bisect_left(self.ends, start)
        hi = bisect.bisect_right(self.starts, end)
        if lo < hi:
            start = min(start, self.starts[lo])
            end = max(end, self.ends[hi - 1])
        self.starts[lo:hi] = [start]
        self.ends[lo:hi] = [end]


def evaluate(
    programs: Sequence[ProgramView],
    records: Mapping[str, EventRecord],
    now: datetime,
    rng: random.Random,
    refused: Mapping[str, int] | None = None,
) -> Plan:
    """Decide what is in force at `now` (server time), which events changed and which responses are due.

    `refused`: events the executor found it cannot obey (mRID → rejection status), rejected now.
    """
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: the schedule needs the server's aware UTC time")
    t = now.timestamp()
    events = _collect(programs, records, t, rng, refused or {})
    ordered = sorted(events, key=_priority)
    _supersede(ordered)
    in_force: dict[str, _Event] = {}
    next_change: float | None = None
    for ev in ordered:
        phase = ev.phase = _advance(ev, t)
        if phase is Phase.ACTIVE:
            for category in ev.categories:
                in_force.setdefault(category, ev)
        if phase in (Phase.SCHEDULED, Phase.ACTIVE):
            upcoming = ev.start if ev.start > t else ev.end
            if next_change is None or upcoming < next_change:
                next_change = upcoming
    default = default_control(programs)
    grad = default_grad(default)
    # Per mode (§12.1.3): the event in force for it, else the default control's value.
    by_mode: dict[str, tuple[str, DERControlBase]] = {}
    for mode in MODES_IN_COMMAND:
        ev_in = in_force.get(mode)
        if ev_in is not None:
            by_mode[mode] = (ev_in.record.mrid, ev_in.control.DERControlBase)
        elif default is not None:
            by_mode[mode] = (DEFAULT_SOURCE, default.DERControlBase)
    power: PowerCommand | None = combine(by_mode, grad)
    return Plan(
        now=t,
        power=power,
        in_force={c: ev.record.mrid for c, ev in in_force.items()},
        states={ev.record.mrid: _state(ev) for ev in events},
        records=tuple(
            replace(ev.record, reached=ev.record.reached | ev.new)
            for ev in events
            if ev.new or ev.record is not records.get(ev.record.mrid)
        ),
        responses=tuple(_responses(events, t)),
        next_change=next_change,
        default=default,
    )


def new_record(control: DERControl, now: float, rng: random.Random) -> EventRecord:
    """First sight of an event: draw its offsets once (the sign of each bound gives the direction)."""
    return EventRecord(
        mrid=normal_mrid(control.mRID),
        first_seen=now,
        start_offset=_draw(rng, control.randomizeStart),
        duration_offset=_draw(rng, control.randomizeDuration),
    )


def normal_mrid(mrid: str) -> str:
    """mRIDs are hex; compare them case-insensitively."""
    return mrid.upper()


def to_datetime(t: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


def _draw(rng: random.Random, bound: int | None) -> float:
    if not bound:
        return 0.0
    return rng.uniform(0.0, float(bound))


def _collect(
    programs: Sequence[ProgramView],
    records: Mapping[str, EventRecord],
    t: float,
    rng: random.Random,
    refused: Mapping[str, int],
) -> list[_Event]:
    events: list[_Event] = []
    seen: set[str] = set()
    digests = _Digests()
    # A stand-in for an unparsable control comes last: a valid control of the same mRID wins.
    invalid: list[tuple[ProgramView, DERControl]] = []
    for prog in programs:
        for control in prog.controls:
            if isinstance(control, InvalidDERControl):
                invalid.append((prog, control))
            else:
                _add(events, seen, digests, prog, control, records, t, rng, refused)
    for prog, control in invalid:
        _add(events, seen, digests, prog, control, records, t, rng, refused)
    digests.keep()
    return events


def _add(
    events: list[_Event],
    seen: set[str],
    digests: _Digests,
    prog: ProgramView,
    control: DERControl,
    records: Mapping[str, EventRecord],
    t: float,
    rng: random.Random,
    refused: Mapping[str, int],
) -> None:
    static = digests.of(control)
    mrid = static.mrid
    if mrid in seen or not static.for_us:
        return  # listed by two programs: the first one owns it; or meant for other devices
    seen.add(mrid)
    record = records.get(mrid)
    ev_new: set[int] = set()
    if record is None:
        record = new_record(control, t, rng)
        ev_new.add(_RECEIVED)
    start = static.start + record.start_offset
    end = max(start, start + static.duration + record.duration_offset)
    ev = _Event(control, static, prog, record, start, end, new=ev_new)
    _screen(ev, t, rng, refused.get(mrid))
    events.append(ev)


@dataclass(frozen=True, slots=True)
class _Static:
    """What an evaluation needs from a DERControl that does not depend on time or records."""

    mrid: str
    start: float
    duration: float
    creation: float
    code: ResponseStatus | None
    categories: frozenset[str]
    for_us: bool
    problem: str | None = None
    ignored: tuple[str, ...] = ()


# Snapshots are immutable and reused between polls, so each control object is digested once.
# Entries hold the object itself (so its id cannot be reused while they live) and only the last
# evaluation's controls are kept, so memory follows the server's list, not its history.
_DIGESTED: dict[int, tuple[DERControl, _Static]] = {}


class _Digests:
    """The digests of one evaluation, reusing the previous evaluation's."""

    def __init__(self) -> None:
        self._now: dict[int, tuple[DERControl, _Static]] = {}

    def of(self, control: DERControl) -> _Static:
        """The digest of `control`, computed at most once per object."""
        key = id(control)
        hit = _DIGESTED.get(key)
        if hit is None or hit[0] is not control:
            hit = (control, _digest(control))
        self._now[key] = hit
        return hit[1]

    def keep(self) -> None:
        """Make this evaluation's digests the ones the next evaluation reuses."""
        global _DIGESTED
        _DIGESTED = self._now


def _digest(control: DERControl) -> _Static:
    code, categories, ignored = classify_modes(control.DERControlBase)
    if code is None and control.interval.duration <= 0:
        code = ResponseStatus.REJECTED_INVALID  # an event with no time to run
    problem = None
    if isinstance(control, InvalidDERControl):
        # its DERControlBase is empty, so classify() already rejects it; say so whatever it says
        code, categories, problem = ResponseStatus.REJECTED_INVALID, frozenset(), control.problem
    return _Static(
        normal_mrid(control.mRID),
        control.interval.start.timestamp(),
        float(control.interval.duration),
        control.creationTime.timestamp(),
        code,
        categories,
        addressed_to_us(control.deviceCategory),
        problem,
        ignored,
    )


def _screen(ev: _Event, t: float, rng: random.Random, refused: int | None = None) -> None:
    """Rejections, expiry and server-side status, before supersession is decided."""
    control = ev.control
    code, categories = ev.static.code or refused, ev.static.categories
    terminal = ev.record.terminal
    if terminal is not None:
        if terminal in _OCCUPYING_TERMINAL:
            ev.categories = categories
        return
    if code is not None:
        ev.new.add(code)
        return
    if ev.record.first_seen >= ev.end:
        ev.new.add(_EXPIRED)  # it ended before it reached us: never applied
        return
    status = control.EventStatus.currentStatus
    if status == CurrentStatus.CANCELLED:
        ev.new.add(_CANCELLED)
        return
    if status == CurrentStatus.SUPERSEDED:
        ev.new.add(_SUPERSEDED)
        return
    if status == CurrentStatus.CANCELLED_WITH_RANDOMIZATION:
        if t < ev.start:
            ev.new.add(_CANCELLED)  # not started: nothing to wind down
            return
        if ev.record.stop_at is None:
            # §12.1.3: a running event cancelled with randomization stops within the larger bound.
            bound = max(abs(control.randomizeStart or 0), abs(control.randomizeDuration or 0))
            ev.record = replace(ev.record, stop_at=t + (rng.uniform(0.0, bound) if bound else 0.0))
        assert ev.record.stop_at is not None
        if ev.record.stop_at < ev.end:
            ev.end = max(ev.start, ev.record.stop_at)
            ev.cancel_ends = True
    ev.categories = categories


def _priority(ev: _Event) -> tuple[int, float, str]:
    # §12.1.3.1: lower primacy wins; equal primacy, the newer creationTime wins; mRID breaks ties.
    return (ev.program.program.primacy, -ev.static.creation, ev.static.mrid)


def _live(ev: _Event) -> bool:
    if ev.new & TERMINAL:
        return False
    terminal = ev.record.terminal
    return terminal is None or terminal in _OCCUPYING_TERMINAL


def _supersede(ordered: list[_Event]) -> None:
    """Cut each event where higher-priority events have taken over every one of its modes.

    sep.xsd EventStatus (Superseded): the superseded event runs until the overlapping event's
    effective start, then ends for good; so a supersession whose newcomer is cancelled before
    it takes over never happens.
    """
    taken: dict[str, _Union] = {}
    for ev in ordered:
        if not _live(ev):
            continue
        if ev.record.terminal is None and ev.categories:
            firsts = [taken[c].first_overlap(ev.start, ev.end) if c in taken else None for c in ev.categories]
            if all(first is not None for first in firsts):
                takeover = max(first for first in firsts if first is not None)
                ev.end = takeover
                ev.superseded_ends, ev.cancel_ends = True, False
        for c in ev.categories:
            taken.setdefault(c, _Union()).add(ev.start, ev.end)


def _advance(ev: _Event, t: float) -> Phase:
    """Phase of the event at t, adding the milestones reached on the way."""
    reached = ev.record.reached | ev.new
    terminal = next((c for c in reached if c in TERMINAL), None)
    if terminal is not None:
        return PHASE_OF_TERMINAL.get(terminal, Phase.REJECTED)
    if t < ev.end:
        if t < ev.start:
            return Phase.SCHEDULED
        if _STARTED not in reached:
            ev.new.add(_STARTED)
        return Phase.ACTIVE
    if ev.superseded_ends:
        ev.new.add(_SUPERSEDED)
        return Phase.SUPERSEDED
    if ev.cancel_ends:
        ev.new.add(_CANCELLED)
        return Phase.CANCELLED
    if _STARTED in reached:
        ev.new.add(_COMPLETED)
        return Phase.COMPLETED
    ev.new.add(MISSED)
    return Phase.MISSED


def _state(ev: _Event) -> EventState:
    code = None
    if ev.phase is Phase.REJECTED:
        code = next(c for c in ev.record.reached | ev.new if c in TERMINAL)
    return EventState(
        ev.record.mrid,
        ev.program.program.mRID,
        ev.phase,
        ev.start,
        ev.end,
        code,
        ev.static.problem,
        ev.static.ignored,
    )


def _responses(events: list[_Event], t: float) -> list[DueResponse]:
    """New milestones the event's responseRequired asks us to report (bit 0: 1; bit 1: the rest)."""
    out: list[DueResponse] = []
    for ev in events:
        reply_to = ev.control.replyTo
        if not ev.new or not reply_to:
            continue
        wanted = ev.control.responseRequired
        for code in sorted(ev.new, key=_response_order):
            if code == MISSED:
                continue
            bit = ResponseRequired.RECEIVED if code == _RECEIVED else ResponseRequired.SPECIFIC
            if wanted & bit:
                out.append(DueResponse(ev.record.mrid, code, reply_to, t))
    return out


def _response_order(code: int) -> int:
    # "Received" always goes first; a new event may reach several milestones in one evaluation.
    return -1 if code == _RECEIVED else code


def default_control(programs: Sequence[ProgramView]) -> DefaultDERControl | None:
    """The DefaultDERControl in force: that of the highest-priority program that has one."""
    best: ProgramView | None = None
    for prog in programs:
        if prog.default_control is not None and (best is None or prog.program.primacy < best.program.primacy):
            best = prog
    return best.default_control if best is not None else None
