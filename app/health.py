"""Health of the gateway's parts: heartbeats for the watchdog, and degraded/ok transitions for people.

Every long-running loop calls `beat(part)` once per iteration (proof it is not hung) and
`problem(part, reason)` / `ok(part)` when what it talks to goes away or comes back. Only
transitions are logged, never repetitions. The supervisor turns this into systemd's watchdog
pings, STATUS= text, the status LED and the status page.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True)
class PartHealth:
    """What is known about one part."""

    name: str
    last_beat: float | None = None
    problem: str | None = None
    since: float = 0.0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One health transition, for the status page's "recent problems"."""

    at: float
    part: str
    problem: str | None


@dataclass(slots=True)
class Health:
    """Registry of part health; `clock` is monotonic seconds (injectable for tests)."""

    clock: Callable[[], float] = time.monotonic
    parts: dict[str, PartHealth] = field(default_factory=dict)
    recent: deque[Event] = field(default_factory=lambda: deque(maxlen=50))

    def _part(self, name: str) -> PartHealth:
        part = self.parts.get(name)
        if part is None:
            part = self.parts[name] = PartHealth(name, since=self.clock())
        return part

    def beat(self, name: str) -> None:
        """Record that the loop of part `name` is alive."""
        self._part(name).last_beat = self.clock()

    def problem(self, name: str, reason: str) -> None:
        """Mark `name` degraded; logs once per transition (or when the reason changes)."""
        part = self._part(name)
        part.errors += 1
        if part.problem != reason:
            if part.problem is None:
                _LOGGER.error("%s: %s", name, reason)
            else:
                _LOGGER.warning("%s: now %s", name, reason)
            part.problem = reason
            part.since = self.clock()
            self.recent.append(Event(part.since, name, reason))

    def ok(self, name: str) -> None:
        """Mark `name` healthy again; logs once when it recovers."""
        part = self._part(name)
        if part.problem is not None:
            _LOGGER.info("%s: recovered after %.0f s (%s)", name, self.clock() - part.since, part.problem)
            part.problem = None
            part.since = self.clock()
            self.recent.append(Event(part.since, name, None))

    def stale(self, names: list[str], max_age_s: float) -> list[str]:
        """Parts among `names` whose loop has not beaten within `max_age_s` (hung or never started)."""
        now = self.clock()
        out = []
        for name in names:
            last = self._part(name).last_beat
            if last is None or now - last > max_age_s:
                out.append(name)
        return out

    def problems(self) -> dict[str, str]:
        """Current problems by part name."""
        return {p.name: p.problem for p in self.parts.values() if p.problem is not None}
