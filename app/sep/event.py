"""Events (2030.5-2018 §12.1.3 and sep.xsd Event/RandomizableEvent/EventStatus)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from app.sep.types import (
    DateTimeInterval,
    OneHourRangeType,
    RespondableSubscribableIdentifiedObject,
    TimeType,
    UInt8,
)


class CurrentStatus(IntEnum):
    """EventStatus.currentStatus values sent by a 2018 server."""

    SCHEDULED = 0
    ACTIVE = 1
    CANCELLED = 2
    CANCELLED_WITH_RANDOMIZATION = 3
    SUPERSEDED = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class EventStatus:
    """The server's view of an event: status, since when, and whether it may be superseded."""

    currentStatus: UInt8
    dateTime: TimeType
    potentiallySuperseded: bool
    potentiallySupersededTime: TimeType | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(RespondableSubscribableIdentifiedObject):
    """An event: when it was created, its status and its interval."""

    creationTime: TimeType
    EventStatus: EventStatus
    interval: DateTimeInterval


@dataclass(frozen=True, slots=True, kw_only=True)
class RandomizableEvent(Event):
    """An event whose start and duration a device randomizes by up to ±3600 s."""

    randomizeDuration: OneHourRangeType | None = None
    randomizeStart: OneHourRangeType | None = None
