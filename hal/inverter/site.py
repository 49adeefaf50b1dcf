"""A whole site behind one interface: several battery inverters that the app drives as one.

`SiteInverter` is a `BatteryInverter` over N members, each behind its own guard (`SafeInverter`:
its nameplate and live ratings, the only clamp), typically on one RS-485 bus or TCP endpoint (the
bus pool hands every member on one bus endpoint the same paced connection, so requests are serialised).
The site as a whole is wrapped by a guard again, so the app sees one inverter:

* **Ratings** are the sums of the members' (last known, so a dead member does not move them).
* **Telemetry**: W is the sum, Hz the median, SoC the energy-weighted mean of the members that
  answered. A member that does not answer is reported degraded and left out; while it is, the
  site's W is a partial sum and goes out as questionable, never as clean truth. It is asked
  again every `RETRY_DEAD_S` only, since each try holds the shared bus for its timeouts.
* **A setpoint** is split in proportion to what each member can do now in that direction (its
  limit; 0 when its state of charge is at the limit or it does not answer), so no share exceeds
  a member's ceiling. The split is redone when a member drops out or comes back, or its state of
  charge reaches a limit: at the next reading, so within one control cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from hal.errors import HalError, InverterUnreachable, NoPowerLimit
from hal.inverter.base import BatteryInverter, ConnectionStatus, OperatingStatus, Ratings, Telemetry
from hal.inverter.guard import SafeInverter
from hal.inverter.settings import Nameplate

_LOGGER = logging.getLogger(__name__)

#: a share this close to the one written is the same share (no re-write)
_SAME_W: Final = 1.0

_MemberCall = Callable[["Member"], Awaitable[None]]

#: a member that does not answer is asked again this often (each try costs the bus its timeouts)
RETRY_DEAD_S: Final = 30.0


@dataclass(frozen=True)
class SocLimits:
    """State of charge below which a member gets no discharge share, above which no charge share."""

    min_pct: float = 0.0
    max_pct: float = 100.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_pct < self.max_pct <= 100.0:
            raise ValueError(f"SoC limits need 0 <= min < max <= 100, got {self.min_pct}, {self.max_pct}")


def split_watts(watts: float, room: Sequence[float]) -> list[float]:
    """`watts` shared in proportion to each member's room (W, >= 0, in its direction), in whole watts.

    Every share is within its room; the shares sum to `watts` rounded, or to the whole room when
    that is smaller (largest remainders get the spare watts).
    """
    total = sum(room)
    if watts == 0 or total <= 0:
        return [0.0] * len(room)
    asked = min(float(round(abs(watts))), math.floor(total))
    exact = [asked * r / total for r in room]
    shares = [math.floor(x) for x in exact]
    spare = int(asked - sum(shares))
    order = sorted(range(len(room)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in order:
        if spare <= 0:
            break
        if shares[i] + 1 <= room[i]:
            shares[i] += 1
            spare -= 1
    sign = 1.0 if watts > 0 else -1.0
    return [sign * s for s in shares]


class Member:
    """One inverter of the site: its guard and what the site last saw and wrote."""

    def __init__(self, name: str, guard: SafeInverter) -> None:
        self.name = name
        self.guard = guard
        self.telemetry: Telemetry | None = None
        #: why its last call failed; None while it answers
        self.failure: str | None = None
        #: the share last written (W); None while it is in its own mode
        self.share_w: float | None = None
        self.held_w: float | None = None
        #: monotonic time of its last failed call
        self.failed_at: float | None = None

    @property
    def available(self) -> bool:
        """Whether it answered its last call."""
        return self.failure is None

    def failed(self, exc: BaseException, now: float) -> None:
        """Record a failed call at monotonic time `now` (logged once per outage)."""
        if self.failure is None:
            _LOGGER.warning("%s does not answer; the other inverters carry on: %s", self.name, exc)
        self.failure = str(exc) or type(exc).__name__
        self.failed_at = now

    def answered(self) -> None:
        """Record a successful call."""
        if self.failure is not None:
            _LOGGER.info("%s answers again", self.name)
        self.failure = None
        self.failed_at = None

    def due(self, now: float) -> bool:
        """Whether to call it at `now`: it answers, or its last failure is RETRY_DEAD_S old."""
        return self.failed_at is None or now - self.failed_at >= RETRY_DEAD_S

    def room_w(self, discharge: bool, soc: SocLimits) -> float:
        """What it can do now in that direction, W: 0 when unreachable, at its SoC limit or unbounded."""
        ratings = self.guard.ratings
        if not self.available or ratings is None:
            return 0.0
        limit = ratings.discharge_limit_w() if discharge else ratings.charge_limit_w()
        if limit is None:
            return 0.0
        level = self.telemetry.soc_pct if self.telemetry is not None else None
        if level is not None and (level <= soc.min_pct if discharge else level >= soc.max_pct):
            return 0.0
        return max(0.0, limit)

    def status(self) -> dict[str, object]:
        """What the status page shows of it (no I/O)."""
        sample, ratings = self.telemetry, self.guard.ratings
        return {
            "name": self.name,
            "reachable": self.available and sample is not None,
            "power W": sample.w if sample else None,
            "state of charge %": sample.soc_pct if sample else None,
            "share W": self.share_w,
            "max discharge W": ratings.discharge_limit_w() if ratings else None,
            "max charge W": ratings.charge_limit_w() if ratings else None,
            "problem": self.failure or ("; ".join(self.guard.problems.values()) or None),
        }


class SiteInverter(BatteryInverter):
    """Several guarded inverters driven as one (see the module)."""

    def __init__(
        self,
        members: Sequence[Member],
        soc: SocLimits | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not members:
            raise ValueError("a site needs at least one inverter")
        self.members = list(members)
        self.soc = soc or SocLimits()
        self._monotonic = monotonic
        self._asked: float | None = None
        self._lock = asyncio.Lock()

    @property
    def problems(self) -> dict[str, str]:
        """Members that do not answer, or whose data their guard does not trust, in words."""
        out: dict[str, str] = {}
        for m in self.members:
            if m.failure is not None:
                out[m.name] = f"{m.name} does not answer (degraded: the others carry on): {m.failure}"
            for subject, text in m.guard.problems.items():
                out[f"{m.name} {subject}"] = f"{m.name}: {text}"
        return out

    def status(self) -> list[dict[str, object]]:
        """Each member as the status page shows it."""
        return [m.status() for m in self.members]

    # -- readings ---------------------------------------------------------------------------

    async def read_ratings(self) -> Ratings:
        """The sums of the members' ratings (a member that does not answer counts with its last ones)."""
        known: list[Ratings] = []
        for m in self.members:
            if not m.due(self._monotonic()):
                if m.guard.ratings is not None:
                    known.append(m.guard.ratings)
                continue
            try:
                known.append(await m.guard.read_ratings())
                m.answered()
            except HalError as exc:
                m.failed(exc, self._monotonic())
                if m.guard.ratings is not None:
                    known.append(m.guard.ratings)
        if not known:
            raise InverterUnreachable("no inverter of the site answers")
        return Ratings(
            max_w=_sum(r.max_w for r in known),
            max_charge_w=_sum(r.max_charge_w for r in known),
            max_discharge_w=_sum(r.max_discharge_w for r in known),
            energy_capacity_wh=_sum(r.energy_capacity_wh for r in known),
            set_max_w=_sum(r.active_power_limit_w() for r in known),
            set_max_charge_w=_sum(r.charge_limit_w() for r in known),
            set_max_discharge_w=_sum(r.discharge_limit_w() for r in known),
        )

    async def read_telemetry(self) -> Telemetry:
        """One reading of every member, combined; the split follows a member that dropped out or came back."""
        samples: list[tuple[Member, Telemetry]] = []
        for m in self.members:
            if not m.due(self._monotonic()):
                continue
            try:
                sample = await m.guard.read_telemetry()
            except HalError as exc:
                m.failed(exc, self._monotonic())
                continue
            m.answered()
            m.telemetry = sample
            samples.append((m, sample))
        if not samples:
            raise InverterUnreachable("no inverter of the site answers")
        await self._follow()
        return _combine(samples, complete=len(samples) == len(self.members))

    async def _follow(self) -> None:
        """Redo the split when what the members can do changed (availability, SoC limits, ratings)."""
        if self._asked is None:
            return
        async with self._lock:
            if self._asked is None or not self._moved(self._asked):
                return
            try:
                await self._apply(self._asked)
            except HalError as exc:
                _LOGGER.debug("re-split failed: %s", exc)

    def _moved(self, watts: float) -> bool:
        shares = self._shares(watts)
        for m, share in zip(self.members, shares, strict=True):
            if not m.available:
                continue
            if m.share_w is None or abs(m.share_w - share) > _SAME_W:
                return True
        return False

    def _shares(self, watts: float) -> list[float]:
        return split_watts(watts, [m.room_w(watts > 0, self.soc) for m in self.members])

    # -- control ----------------------------------------------------------------------------

    async def set_active_power(self, watts: float) -> float:
        """Split `watts` over the members that can take it and write each share; return the sum held."""
        async with self._lock:
            self._asked = watts
            return await self._apply(watts)

    async def _apply(self, watts: float) -> float:
        for m in self.members:
            if m.guard.ratings is None and m.available:
                try:
                    await m.guard.read_ratings()
                except HalError as exc:
                    m.failed(exc, self._monotonic())
        # A member that fails its write drops out and the rest is split again, at most once per member.
        for _ in range(len(self.members) + 1):
            shares = self._shares(watts)
            failed = False
            for m, share in zip(self.members, shares, strict=True):
                if not m.available:
                    m.share_w = m.held_w = None  # asked nothing now (it may hold its last until its timer)
                    continue
                try:
                    m.held_w = await m.guard.set_active_power(share)
                    m.share_w = share
                    m.answered()
                except NoPowerLimit:
                    m.share_w = m.held_w = None  # its guard refused: nothing written, no share
                except HalError as exc:
                    m.failed(exc, self._monotonic())
                    m.share_w = m.held_w = None
                    failed = True
            if not failed:
                break
        live = [m for m in self.members if m.available and m.held_w is not None]
        if not live:
            raise InverterUnreachable("no inverter of the site takes a setpoint")
        return float(sum(m.held_w for m in live if m.held_w is not None))

    async def apply_limits(self, discharge_w: float | None, charge_w: float | None) -> bool:
        """Split each cap over the members as a setpoint is split (each within its own room) and have
        each hold its part; True when every member that answers does. When one cannot hold limits,
        the others' are withdrawn and False says so (the caller then works with setpoints)."""
        async with self._lock:
            count = len(self.members)
            discharge: list[float | None] = [None] * count
            charge: list[float | None] = [None] * count
            if discharge_w is not None:
                discharge = list(split_watts(discharge_w, [m.room_w(True, self.soc) for m in self.members]))
            if charge_w is not None:
                parts = split_watts(-charge_w, [m.room_w(False, self.soc) for m in self.members])
                charge = [abs(p) for p in parts]
            holding: list[Member] = []
            for m, d, c in zip(self.members, discharge, charge, strict=True):
                if not m.available:
                    continue
                try:
                    held = await m.guard.apply_limits(d, c)
                except HalError as exc:
                    m.failed(exc, self._monotonic())
                    continue
                m.answered()
                if not held:
                    for other in holding:
                        with contextlib.suppress(HalError):
                            await other.guard.release()
                    return False
                holding.append(m)
            if not holding:
                raise InverterUnreachable("limits: no inverter of the site answers")
            self._asked = None  # limits only: no setpoint to follow
            for m in self.members:
                m.share_w = m.held_w = None
            return True

    async def keepalive(self) -> None:
        """Refresh every member's revert timer (a changed split is written instead)."""
        async with self._lock:
            if self._asked is not None and self._moved(self._asked):
                await self._apply(self._asked)
                return
            await self._each("keepalive", lambda m: m.guard.keepalive())

    async def release(self) -> None:
        """Hand every member back to its own mode (one that does not answer reverts by its own timer)."""
        async with self._lock:
            self._asked = None
            for m in self.members:
                m.share_w = m.held_w = None
            await self._each("release", lambda m: m.guard.release())

    async def _each(self, what: str, call: _MemberCall) -> None:
        answered = 0
        for m in self.members:
            if not m.due(self._monotonic()):
                continue  # it reverts to its own mode by its own timer
            try:
                await call(m)
            except HalError as exc:
                m.failed(exc, self._monotonic())
                continue
            m.answered()
            answered += 1
        if not answered:
            raise InverterUnreachable(f"{what}: no inverter of the site answers")

    async def close(self) -> None:
        """Close every member."""
        for m in self.members:
            await m.guard.close()


def site_nameplate(plates: Sequence[Nameplate | None]) -> Nameplate | None:
    """The site's ceiling: the sum of the members' nameplates, when every member has one."""
    if not plates or any(p is None for p in plates):
        return None
    known = [p for p in plates if p is not None]
    return Nameplate(
        max_discharge_w=sum(p.max_discharge_w for p in known), max_charge_w=sum(p.max_charge_w for p in known)
    )


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def _combine(samples: Sequence[tuple[Member, Telemetry]], *, complete: bool = True) -> Telemetry:
    """One site reading from the members that answered (see the module); without all of them
    (`complete` false) the sum of their power is questionable."""
    readings = [s for _, s in samples]
    suspect: dict[str, float] = {}
    w: float | None = None
    if all(s.w is not None for s in readings):
        w = float(sum(s.w for s in readings if s.w is not None))
        if not complete:
            suspect["w"], w = w, None  # a partial sum: sent flagged, never as the site's power
    else:
        parts = [s.w if s.w is not None else s.suspect.get("w") for s in readings]
        if all(p is not None for p in parts):
            suspect["w"] = float(sum(p for p in parts if p is not None))
    freqs = [s.hz for s in readings if s.hz is not None]
    hz = _median(freqs) if freqs else None
    stamps: list[datetime] = [s.timestamp for s in readings]
    return Telemetry(
        timestamp=max(stamps),
        w=w,
        hz=hz,
        soc_pct=_weighted_soc(samples),
        connection=_connection(readings),
        operating=_operating(readings),
        suspect=suspect,
    )


def _weighted_soc(samples: Sequence[tuple[Member, Telemetry]]) -> float | None:
    """SoC weighted by each member's energy capacity (equal weights when one capacity is unknown)."""
    known = [(m, s.soc_pct) for m, s in samples if s.soc_pct is not None]
    if not known:
        return None
    caps = [m.guard.ratings.energy_capacity_wh if m.guard.ratings is not None else None for m, _ in known]
    if any(c is None or c <= 0 for c in caps):
        return sum(soc for _, soc in known if soc is not None) / len(known)
    weights = [c for c in caps if c is not None]
    return sum(w * soc for w, (_, soc) in zip(weights, known, strict=True) if soc is not None) / sum(weights)


def _connection(readings: Sequence[Telemetry]) -> ConnectionStatus | None:
    states = [s.connection for s in readings if s.connection is not None]
    if not states:
        return None
    connected = ConnectionStatus.CONNECTED in states
    return ConnectionStatus.CONNECTED if connected else ConnectionStatus.DISCONNECTED


def _operating(readings: Sequence[Telemetry]) -> OperatingStatus | None:
    states = [s.operating for s in readings if s.operating is not None]
    if not states:
        return None
    return OperatingStatus.RUNNING if OperatingStatus.RUNNING in states else states[0]


def _median(values: list[float]) -> float:
    """The median of a non-empty list (`statistics` would load fractions and decimal: 0.6 MB resident)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
