"""The scheduler's inputs and outputs: program views, persisted event records, states and plans."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from app.control.modes import PowerCommand
from app.sep.der import DefaultDERControl, DERControl, DERProgram
from app.sep.response import ResponseStatus

#: Internal milestone: the event's window passed while we were not running it (down, or late);
#: recorded so it ends, never posted (claiming "completed" would be false).
MISSED: Final = 0
#: Milestones after which an event is over.
TERMINAL: Final = frozenset(
    {
        ResponseStatus.EVENT_COMPLETED,
        ResponseStatus.EVENT_CANCELLED,
        ResponseStatus.EVENT_SUPERSEDED,
        ResponseStatus.REJECTED_NOT_APPLICABLE,
        ResponseStatus.REJECTED_INVALID,
        ResponseStatus.REJECTED_EXPIRED,
        MISSED,
    }
)


class Phase(enum.Enum):
    """An event's local state."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    MISSED = "missed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


#: The phase each terminal milestone ends in (rejections: Phase.REJECTED).
PHASE_OF_TERMINAL: Final = {
    ResponseStatus.EVENT_COMPLETED: Phase.COMPLETED,
    MISSED: Phase.MISSED,
    ResponseStatus.EVENT_CANCELLED: Phase.CANCELLED,
    ResponseStatus.EVENT_SUPERSEDED: Phase.SUPERSEDED,
}


class ProgramView(Protocol):
    """One DERProgram with its DERControls and DefaultDERControl (app.client's ProgramBranch is one)."""

    @property
    def program(self) -> DERProgram:
        """The program (its primacy ranks it)."""

    @property
    def controls(self) -> Sequence[DERControl]:
        """Every DERControl the server lists for it."""

    @property
    def default_control(self) -> DefaultDERControl | None:
        """Its DefaultDERControl, if it has one."""

    @property
    def controls_complete(self) -> bool:
        """True when `controls` is the server's whole DERControlList (read to its end)."""


@dataclass(frozen=True, slots=True)
class ProgramControls:
    """A plain ProgramView (tests, tools); the session's snapshots carry their own."""

    program: DERProgram
    controls: tuple[DERControl, ...] = ()
    default_control: DefaultDERControl | None = None
    controls_complete: bool = True


@dataclass(frozen=True, slots=True)
class EventRecord:
    """What must be remembered about one event (by mRID) across evaluations and restarts."""

    mrid: str
    first_seen: float
    """Server time (epoch seconds) of the evaluation that first saw the event."""
    start_offset: float
    """The randomizeStart draw, seconds."""
    duration_offset: float
    """The randomizeDuration draw, seconds."""
    reached: frozenset[int] = frozenset()
    """Milestones (Response.status codes, or MISSED) already reached, hence already answered."""
    stop_at: float | None = None
    """Cancelled with randomization (currentStatus 3) while active: the drawn moment to stop."""

    @property
    def terminal(self) -> int | None:
        """The final milestone, or None while the event is still open."""
        final = self.reached & TERMINAL
        return next(iter(final)) if final else None


@dataclass(frozen=True, slots=True)
class EventState:
    """One event's local state after an evaluation; times are effective (randomized) server times."""

    mrid: str
    program: str
    phase: Phase
    start: float
    end: float
    code: int | None = None
    """The rejection status for REJECTED."""
    problem: str | None = None
    """Why the server's control could not be parsed (it stood in as an InvalidDERControl)."""
    ignored: tuple[str, ...] = ()
    """The control's modes the battery does not apply (the rest of it is obeyed)."""


@dataclass(frozen=True, slots=True)
class DueResponse:
    """A Response now owed to the server: post `status` about `mrid` to `reply_to`."""

    mrid: str
    status: int
    reply_to: str
    created: float


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of one evaluation."""

    now: float
    power: PowerCommand | None
    """What the battery must do now; None = release it to its own mode."""
    in_force: Mapping[str, str]
    """Supersession category -> mRID of the event in force for it."""
    states: Mapping[str, EventState]
    records: tuple[EventRecord, ...]
    """Records created or changed by this evaluation (persist them)."""
    responses: tuple[DueResponse, ...]
    next_change: float | None
    """The next server time at which an evaluation would give a different plan (None: never)."""
    default: DefaultDERControl | None = None
    """The DefaultDERControl of the highest-priority program that has one."""
