"""Events that vanish from a fully read DERControlList while in force are treated as cancelled.

2030.5-2023 makes it a rule (and servers that delete rather than cancel need it): an event the
server no longer lists, though it read its program's list to the end, no longer stands. A list
cut short (paging limits, a page that failed) or unreadable never cancels anything.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from app.control.model import EventRecord, ProgramControls, ProgramView
from app.sep.der import DERControl
from app.sep.event import CurrentStatus
from app.sep.response import ResponseStatus

_LOGGER = logging.getLogger(__name__)


def _key(mrid: str) -> str:
    return mrid.upper()  # as app.control.schedule.normal_mrid (imported there from here would cycle)


class VanishedEvents:
    """Remembers what each program listed: an event missing from a list read only in part stays as
    last listed; one in force that vanished from a fully read list stands in as a cancelled copy (so
    the scheduler ends it: response 6, back to the default)."""

    def __init__(self) -> None:
        #: mRID -> (program mRID, the control as last listed)
        self._listed: dict[str, tuple[str, DERControl]] = {}
        #: mRID -> (program mRID, a cancelled copy), until its record is terminal
        self._ghosts: dict[str, tuple[str, DERControl]] = {}

    def programs(
        self, programs: Sequence[ProgramView], records: Mapping[str, EventRecord]
    ) -> Sequence[ProgramView]:
        """`programs`, plus a cancelled stand-in for each in-force event that vanished from a full list."""
        listed = {_key(c.mRID): (p.program.mRID, c) for p in programs for c in p.controls}
        complete = {p.program.mRID for p in programs if p.controls_complete}
        for mrid in [m for m in self._ghosts if m in listed or _closed(records.get(m))]:
            del self._ghosts[mrid]
        kept: dict[str, tuple[str, DERControl]] = {}
        for mrid, (program, control) in self._listed.items():
            if mrid in listed or mrid in self._ghosts:
                continue
            if program not in complete:
                # not read in full (cut short, unreadable): as last listed, never cancelled
                kept[mrid] = listed[mrid] = (program, control)
                continue
            record = records.get(mrid)
            if record is None or record.terminal is not None:
                continue
            if ResponseStatus.EVENT_STARTED not in record.reached:
                continue
            _LOGGER.warning(
                "event %s: gone from program %s's fully read DERControlList while in force: "
                "treated as cancelled, back to the default control",
                mrid,
                program,
            )
            status = dataclasses.replace(control.EventStatus, currentStatus=CurrentStatus.CANCELLED)
            self._ghosts[mrid] = (program, dataclasses.replace(control, EventStatus=status))
        self._listed = listed
        extra = [*self._ghosts.values(), *kept.values()]
        if not extra:
            return programs
        out: list[ProgramView] = []
        for p in programs:
            more = tuple(c for prog, c in extra if prog == p.program.mRID)
            if more:
                out.append(ProgramControls(p.program, (*p.controls, *more), p.default_control, False))
            else:
                out.append(p)
        return out


def _closed(record: EventRecord | None) -> bool:
    return record is not None and record.terminal is not None
