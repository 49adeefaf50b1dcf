"""When each polled resource is next due: pure bookkeeping over (href, pollRate, now, rng).

2030.5 §5.6.2 / Wattsmart: clients SHALL poll at the resource's pollRate and no faster. A read at
`t` makes the resource due again at `t + rate + phase`, where `phase` is a small per-resource
random delay drawn once, so a fleet of boxes spreads its polls instead of hitting the server
in the same second. Nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: a server sending pollRate 0 (or 1) must not turn us into a load test
MIN_POLL_RATE_S = 10
#: the phase is at most this fraction of the pollRate ...
PHASE_FRACTION = 0.1
#: ... and at most this many seconds
PHASE_MAX_S = 30.0


def effective_rate(own: int | None, inherited: int, floor: int = MIN_POLL_RATE_S) -> int:
    """A resource's own pollRate, else the one inherited from above; never below `floor`."""
    rate = own if own is not None else inherited
    return max(rate, floor)


@dataclass(slots=True)
class _Slot:
    rate: float
    phase: float
    last: float

    @property
    def due(self) -> float:
        return self.last + self.rate + self.phase


class PollSchedule:
    """Per-href read times; `now` is any monotonic seconds the caller chooses."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._slots: dict[str, _Slot] = {}

    def __contains__(self, href: str) -> bool:
        return href in self._slots

    def is_due(self, href: str, now: float) -> bool:
        """True if `href` was never read or its pollRate (plus phase) has passed since."""
        slot = self._slots.get(href)
        return slot is None or now >= slot.due

    def record(self, href: str, now: float, rate: float) -> None:
        """`href` was read at `now`; its pollRate is `rate` seconds."""
        slot = self._slots.get(href)
        if slot is None:
            phase = self._rng.uniform(0.0, min(rate * PHASE_FRACTION, PHASE_MAX_S))
            self._slots[href] = _Slot(rate, phase, now)
        else:
            if rate != slot.rate:
                slot.phase = min(slot.phase, rate * PHASE_FRACTION, PHASE_MAX_S)
            slot.rate, slot.last = rate, now

    def rate(self, href: str) -> float | None:
        """The pollRate last recorded for `href`."""
        slot = self._slots.get(href)
        return slot.rate if slot is not None else None

    def due_at(self, href: str) -> float | None:
        """When `href` is next due (None if never read)."""
        slot = self._slots.get(href)
        return slot.due if slot is not None else None

    def make_due(self, href: str) -> None:
        """Read `href` at the next chance (its child 404'd: re-discover the branch)."""
        slot = self._slots.get(href)
        if slot is not None:
            slot.last = -slot.rate - slot.phase - 1.0

    def forget(self, href: str) -> None:
        """Stop tracking `href`."""
        self._slots.pop(href, None)

    def keep_only(self, hrefs: set[str]) -> None:
        """Forget every href not in `hrefs` (branches that disappeared)."""
        for href in [h for h in self._slots if h not in hrefs]:
            del self._slots[href]

    def next_due(self) -> float | None:
        """The earliest due time of any tracked href."""
        return min((s.due for s in self._slots.values()), default=None)
