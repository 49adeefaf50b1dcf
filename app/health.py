"""Health of the gateway's parts: heartbeats for the watchdog, and degraded/ok transitions for people.

Every long-running loop calls `beat(part)` once per iteration (proof it is not hung) and
`problem(part, reason, kind)` / `ok(part)` when what it talks to goes away or comes back. Only
transitions are logged, never repetitions. The supervisor turns this into systemd's watchdog
pings and STATUS= text; the LED and the status page decide from each problem's `Kind`, never
from its words (which are for people).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

_LOGGER = logging.getLogger(__name__)


class Kind(StrEnum):
    """What sort of problem a part has: what the LED shows and what recovers it."""

    #: this box has no network (no route, no name resolution)
    NETWORK = "network"
    #: the server does not answer, or answers what we cannot use: retried with backoff
    SERVER = "server"
    #: the server refused a request as we sent it (it says why; not repeated unchanged)
    SERVER_REFUSED = "server refused"
    #: 401/403: the utility does not accept this box's certificate (LFDI not registered)
    NOT_REGISTERED = "not registered"
    #: the TLS handshake failed, or our certificate, key or CA cannot be used
    CERTIFICATE = "certificate"
    #: the inverter does not answer, or its data cannot be trusted: retried
    INVERTER = "inverter"
    #: the state database or the outbox cannot be written or read
    STORAGE = "storage"
    #: retrying cannot help: a setting must be fixed (then the gateway restarts)
    CONFIGURATION = "configuration"
    #: a part crashed or hit a bug: restarted by the supervisor
    SOFTWARE = "software"


@dataclass(slots=True)
class PartHealth:
    """What is known about one part."""

    name: str
    last_beat: float | None = None
    problem: str | None = None
    kind: Kind | None = None
    since: float = 0.0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One health transition, for the status page's "recent problems" (`problem` None: recovered)."""

    at: float
    part: str
    problem: str | None
    kind: Kind | None = None


@dataclass(slots=True)
class Health:
    """Registry of part health; `monotonic` is the monotonic clock in seconds (injectable for tests)."""

    monotonic: Callable[[], float] = time.monotonic
    parts: dict[str, PartHealth] = field(default_factory=dict)
    recent: deque[Event] = field(default_factory=lambda: deque(maxlen=50))

    def _part(self, name: str) -> PartHealth:
        part = self.parts.get(name)
        if part is None:
            part = self.parts[name] = PartHealth(name, since=self.monotonic())
        return part

    def beat(self, name: str) -> None:
        """Record that the loop of part `name` is alive."""
        self._part(name).last_beat = self.monotonic()

    def problem(self, name: str, reason: str, kind: Kind) -> None:
        """Mark `name` degraded by a problem of `kind`; logs once per transition (or a changed reason)."""
        part = self._part(name)
        part.errors += 1
        part.kind = kind
        if part.problem != reason:
            if part.problem is None:
                _LOGGER.error("%s: %s", name, reason)
            else:
                _LOGGER.warning("%s: now %s", name, reason)
            part.problem = reason
            part.since = self.monotonic()
            self.recent.append(Event(part.since, name, reason, kind))

    def ok(self, name: str) -> None:
        """Mark `name` healthy again; logs once when it recovers."""
        part = self._part(name)
        if part.problem is not None:
            _LOGGER.info("%s: recovered after %.0f s (%s)", name, self.monotonic() - part.since, part.problem)
            part.problem = part.kind = None
            part.since = self.monotonic()
            self.recent.append(Event(part.since, name, None))

    def stale(self, names: list[str], max_age_s: float) -> list[str]:
        """Parts among `names` whose loop has not beaten within `max_age_s` (hung or never started)."""
        now = self.monotonic()
        out = []
        for name in names:
            last = self._part(name).last_beat
            if last is None or now - last > max_age_s:
                out.append(name)
        return out

    def problems(self) -> dict[str, str]:
        """Current problems by part name."""
        return {p.name: p.problem for p in self.parts.values() if p.problem is not None}

    def kind(self, name: str) -> Kind | None:
        """The kind of `name`'s current problem (None: healthy)."""
        part = self.parts.get(name)
        return part.kind if part is not None and part.problem is not None else None

    def kinds(self) -> dict[str, Kind]:
        """The kind of each current problem, by part name."""
        return {p.name: p.kind for p in self.parts.values() if p.problem is not None and p.kind is not None}
