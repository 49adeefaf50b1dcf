"""The one gate every setpoint passes: a hard ceiling, live ratings, inverter data checked before use.

`SafeInverter` wraps a device (SunSpec, register table, simulator) and is what `connect_inverter`
returns, so every write, from every mode, the default control and the fail-safe, goes through it:

* **Live ratings.** `read_ratings()` re-reads the device once its last read is a minute old; any
  caller may ask as often as it likes. A change beyond a small tolerance is logged once (old → new)
  and handed to the listeners, so the setpoint and DERSettings follow an installer's new WMax.
* **A ceiling no path can exceed.** The ratings it returns are the device's, each held to the
  installer's nameplate; a setpoint is clamped to them (`Ratings.clamp`, the only clamp) right
  before it is written. Unknown limits never mean "unlimited": with neither a plausible rating nor
  a nameplate for a direction, nothing is written and `NoPowerLimit` says why.
* **Data checked before it is trusted.** Ratings of 0 or beyond twice the nameplate, SoC outside
  0–100 %, frequency outside 40–70 Hz, power beyond twice the nameplate, and values the device
  reported before but no longer does, become unknown (readings keep them in `Telemetry.suspect`).
  Each kind is logged once as a WARNING and kept in `problems` until it clears.
* **What it last saw.** The last reading, the setpoint the device holds and the last failure
  (cleared by the next success), so a status page shows them without Modbus traffic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from hal.errors import HalError, InverterProtocolError, NoPowerLimit
from hal.inverter.base import BatteryInverter, Ratings, Telemetry
from hal.inverter.settings import MAX_NAMEPLATE_W, Nameplate

_LOGGER = logging.getLogger(__name__)

#: ratings are never used older than this (by default; a minute at most)
RATINGS_MAX_AGE_S: Final = 60.0
# A copy this close to its age limit is refreshed already: a caller every 30 s (the sampler) then
# reads the device every 60 s, not every 90 s.
_REFRESH_MARGIN: Final = 1 / 12
#: no battery inverter is rated below this; a smaller rating is garbage (a scale factor of −10, a 0)
MIN_RATING_W: Final = 10.0
#: a rating or a measured power beyond this many times the nameplate is garbage
PLAUSIBLE_FACTOR: Final = 2.0
# Changes within this much of the old value are noise, not a new rating.
_CHANGE_REL: Final = 0.01
_CHANGE_ABS_W: Final = 10.0
#: the device may hold a setpoint this far beyond its clamp (rounding) before it is called a fault
_HELD_SLACK_W: Final = 1.0
_HZ_RANGE: Final = (40.0, 70.0)
_SOC_RANGE: Final = (0.0, 100.0)
_MAX_CAPACITY_WH: Final = 100e6

_RATINGS: Final = {
    "max_w": "max power rating",
    "max_charge_w": "max charge rating",
    "max_discharge_w": "max discharge rating",
    "set_max_w": "max power setting (WMax)",
    "set_max_charge_w": "max charge setting",
    "set_max_discharge_w": "max discharge setting",
}
# A setting of 0 is an installer's choice (no charging, say); a rating of 0 is garbage.
_SETTINGS: Final = frozenset({"set_max_w", "set_max_charge_w", "set_max_discharge_w"})

RatingsListener = Callable[[Ratings | None, Ratings], None]
T = TypeVar("T")


class SafeInverter(BatteryInverter):
    """A device behind the ceiling, the live ratings and the plausibility checks (see the module)."""

    def __init__(
        self,
        inner: BatteryInverter,
        nameplate: Nameplate | None = None,
        *,
        max_age_s: float = RATINGS_MAX_AGE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.nameplate = nameplate
        self._max_age_s = max_age_s
        self._monotonic = monotonic
        self._ratings: Ratings | None = None
        self._reported: Ratings | None = None
        self._read_at = -math.inf
        self._refresh = asyncio.Lock()
        self._seen: set[str] = set()
        self._listeners: list[RatingsListener] = []
        self._asked: float | None = None
        self._written: float | None = None
        self.problems: dict[str, str] = {}
        """Current data problems by subject ("ratings", "w", "hz", "soc_pct", "limit"), in words."""
        #: the last reading returned (checked), for the status page
        self.telemetry: Telemetry | None = None
        #: watts the device last accepted; None while released (its own mode)
        self.setpoint_w: float | None = None
        #: the last failure of a call, cleared by the next success
        self.failure: str | None = None
        #: monotonic time of the last call that succeeded
        self.last_success: float | None = None

    async def _observed(self, call: Awaitable[T]) -> T:
        """Await `call`, remembering its failure or its success."""
        try:
            result = await call
        except HalError as exc:
            self.failure = str(exc) or type(exc).__name__
            raise
        self.failure = None
        self.last_success = self._monotonic()
        return result

    # -- what it knows ----------------------------------------------------------------------

    @property
    def ratings(self) -> Ratings | None:
        """The ratings last read, checked and held to the nameplate (what every setpoint obeys)."""
        return self._ratings

    @property
    def reported(self) -> Ratings | None:
        """The ratings as the device last reported them, after the checks but before the ceiling."""
        return self._reported

    def on_ratings_change(self, listener: RatingsListener) -> None:
        """Call `listener(old, new)` when the ratings change beyond the tolerance (and on the first read)."""
        self._listeners.append(listener)

    def _bound_w(self) -> float:
        """Beyond this a rating is garbage."""
        if self.nameplate is not None:
            return PLAUSIBLE_FACTOR * self.nameplate.max_w
        return MAX_NAMEPLATE_W

    def _measured_bound_w(self) -> float:
        """Beyond this a measured power is garbage: twice the nameplate, else twice the largest rating."""
        if self.nameplate is not None:
            return PLAUSIBLE_FACTOR * self.nameplate.max_w
        known = [getattr(self._reported, f) for f in _RATINGS] if self._reported is not None else []
        largest = max((v for v in known if v), default=None)
        return PLAUSIBLE_FACTOR * largest if largest else MAX_NAMEPLATE_W

    # -- readings ---------------------------------------------------------------------------

    async def read_ratings(self) -> Ratings:
        """The live ratings: read from the device when the last read is a minute old, else remembered."""
        return await self._observed(self._live(self._max_age_s * (1 - _REFRESH_MARGIN)))

    async def _live(self, max_age_s: float) -> Ratings:
        async with self._refresh:
            if self._ratings is not None and self._monotonic() - self._read_at < max_age_s:
                return self._ratings
            raw = await self.inner.read_ratings()
            self._read_at = self._monotonic()
            self._reported = reported = self._checked(raw)
            effective = self._held_to_nameplate(reported)
            self._check_limits(effective)
            old = self._ratings
            if old is not None and not _changed(old, effective):
                return old  # within the tolerance: the same ratings, no PUT, no new setpoint
            if old is not None:
                _LOGGER.info("inverter ratings changed: %s", _difference(old, effective))
            self._ratings = effective
            for listener in self._listeners:
                listener(old, effective)
            return effective

    async def read_telemetry(self) -> Telemetry:
        """One reading with implausible values moved to `suspect` (and reported once as a problem)."""
        self.telemetry = await self._observed(self._read_telemetry())
        return self.telemetry

    async def _read_telemetry(self) -> Telemetry:
        if self._reported is None:
            # once: the plausibility bound on a measured power comes from the ratings
            with contextlib.suppress(HalError):
                await self._live(self._max_age_s * (1 - _REFRESH_MARGIN))
        sample = await self.inner.read_telemetry()
        suspect = dict(sample.suspect)
        bound = self._measured_bound_w()
        return dataclasses.replace(
            sample,
            w=self._plausible(
                "w",
                sample.w,
                (-bound, bound),
                suspect,
                f"power beyond twice the nameplate ({bound / 2:.0f} W)",
            ),
            hz=self._plausible("hz", sample.hz, _HZ_RANGE, suspect, "frequency outside 40–70 Hz"),
            soc_pct=self._plausible(
                "soc_pct", sample.soc_pct, _SOC_RANGE, suspect, "state of charge outside 0–100 %"
            ),
            suspect=suspect,
        )

    def _plausible(
        self,
        name: str,
        value: float | None,
        bounds: tuple[float, float],
        suspect: dict[str, float],
        what: str,
    ) -> float | None:
        if value is not None and not bounds[0] <= value <= bounds[1]:
            suspect[name] = value
            self._problem(name, f"{what}: the inverter reports {value:g}; not trusted, sent as questionable")
            return None
        if value is None and name in self._seen and name not in suspect:
            self._problem(
                name, f"{_FIELD_WORDS[name]} no longer reported (value or scale factor not implemented)"
            )
            return None
        if value is not None:
            self._seen.add(name)
            self._clear(name)
        return value

    def _checked(self, raw: Ratings) -> Ratings:
        """The device's ratings with garbage made unknown; records what was wrong."""
        bound = self._bound_w()
        wrong: list[str] = []
        values: dict[str, float | None] = {}
        for name, label in _RATINGS.items():
            value = getattr(raw, name)
            if value is None:
                if name in self._seen:
                    wrong.append(f"{label} no longer reported")
            elif (value == 0 and name in _SETTINGS) or MIN_RATING_W <= value <= bound:
                self._seen.add(name)
            else:
                wrong.append(f"{label} {value:g} W (plausible {MIN_RATING_W:g}–{bound:g} W)")
                value = None
            values[name] = value
        if all(v is None for v in values.values()) and not wrong:
            wrong.append("the inverter reports no power rating (not implemented, or its scale factor is not)")
        capacity = raw.energy_capacity_wh
        if capacity is not None and not 0 < capacity <= _MAX_CAPACITY_WH:
            wrong.append(f"energy capacity {capacity:g} Wh")
            capacity = None
        if wrong:
            ceiling = (
                "the configured nameplate limits" if self.nameplate is not None else "nothing else limits"
            )
            self._problem("ratings", f"inverter ratings not trusted: {'; '.join(wrong)} ({ceiling})")
        else:
            self._clear("ratings")
        return Ratings(energy_capacity_wh=capacity, **values)

    def _held_to_nameplate(self, reported: Ratings) -> Ratings:
        plate = self.nameplate
        if plate is None:
            return reported

        def held(value: float | None, ceiling: float, *, fill: bool) -> float | None:
            if value is None:
                return ceiling if fill else None
            return min(value, ceiling)

        return dataclasses.replace(
            reported,
            max_w=held(reported.max_w, plate.max_w, fill=True),
            max_charge_w=held(reported.max_charge_w, plate.max_charge_w, fill=True),
            max_discharge_w=held(reported.max_discharge_w, plate.max_discharge_w, fill=True),
            set_max_w=held(reported.set_max_w, plate.max_w, fill=False),
            set_max_charge_w=held(reported.set_max_charge_w, plate.max_charge_w, fill=False),
            set_max_discharge_w=held(reported.set_max_discharge_w, plate.max_discharge_w, fill=False),
        )

    def _check_limits(self, effective: Ratings) -> None:
        unknown = [
            d
            for d, limit in (
                ("discharge", effective.discharge_limit_w()),
                ("charge", effective.charge_limit_w()),
            )
            if limit is None
        ]
        if unknown:
            self._problem(
                "limit",
                f"no power limit known for {' and '.join(unknown)}: no plausible inverter rating and no "
                "inverter.nameplate configured; nothing is written in that direction",
            )
        else:
            self._clear("limit")

    def _problem(self, subject: str, text: str) -> None:
        if subject not in self.problems:
            _LOGGER.warning("%s", text)
        self.problems[subject] = text

    def _clear(self, subject: str) -> None:
        if self.problems.pop(subject, None) is not None:
            _LOGGER.info("inverter data: %s is plausible again", _FIELD_WORDS.get(subject, subject))

    # -- control ----------------------------------------------------------------------------

    async def set_active_power(self, watts: float) -> float:
        """Clamp to the live ratings held to the nameplate, then write; `NoPowerLimit` when none bounds it."""
        self._asked = watts
        self.setpoint_w = await self._observed(self._write(watts))
        return self.setpoint_w

    async def _write(self, watts: float) -> float:
        # The whole minute: the sampler refreshes the copy before then, so a setpoint rarely waits
        # for a ratings read (~140 ms at 9600 baud).
        ratings = await self._live(self._max_age_s)
        target = ratings.clamp(watts)
        if target is None:
            self._asked = None
            raise NoPowerLimit(self.problems.get("limit") or f"no power limit known for {watts:.0f} W")
        held = await self.inner.set_active_power(target)
        self._written = target
        if abs(held) > abs(target) + _HELD_SLACK_W:
            # The device's rounding went past the limit: never leave that in force.
            self._asked = self._written = None
            await self.inner.release()
            raise InverterProtocolError(f"the inverter holds {held:.0f} W for a setpoint of {target:.0f} W")
        return held

    async def apply_limits(self, discharge_w: float | None, charge_w: float | None) -> bool:
        """Hold the caps to the live ratings and the nameplate (a looser cap is theirs), then pass them on."""
        held = await self._observed(self._apply_limits(discharge_w, charge_w))
        if held:
            self.setpoint_w = None  # its own mode, under the caps
        return held

    async def _apply_limits(self, discharge_w: float | None, charge_w: float | None) -> bool:
        ratings = await self._live(self._max_age_s)
        held = await self.inner.apply_limits(
            _cap(discharge_w, ratings.discharge_limit_w()), _cap(charge_w, ratings.charge_limit_w())
        )
        if held:
            self._asked = self._written = None  # the device dropped any setpoint: limits only
        return held

    async def keepalive(self) -> None:
        """Refresh the active setpoint, re-clamped to the live ratings (a lowered rating holds at once)."""
        await self._observed(self._keepalive())

    async def _keepalive(self) -> None:
        if self._asked is None:
            await self.inner.keepalive()
            return
        ratings = await self._live(self._max_age_s)
        if ratings.clamp(self._asked) != self._written:
            await self._write(self._asked)
        else:
            await self.inner.keepalive()

    async def release(self) -> None:
        """Hand the battery back to its own mode."""
        self._asked = self._written = None
        await self._observed(self.inner.release())
        self.setpoint_w = None

    async def close(self) -> None:
        """Close the device."""
        await self.inner.close()


_FIELD_WORDS: Final = {
    "w": "the power reading",
    "hz": "the frequency reading",
    "soc_pct": "the state of charge",
    "ratings": "the ratings",
    "limit": "the power limit",
}


def _cap(cap_w: float | None, limit_w: float | None) -> float | None:
    """A cap within 0 and the limit in its direction (an unknown limit leaves it as asked: a cap only
    ever restricts)."""
    if cap_w is None:
        return None
    return max(0.0, cap_w if limit_w is None else min(cap_w, limit_w))


def _changed(old: Ratings, new: Ratings) -> bool:
    for f in dataclasses.fields(Ratings):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if (a is None) != (b is None):
            return True
        if a is not None and b is not None and abs(a - b) > max(_CHANGE_ABS_W, _CHANGE_REL * abs(a)):
            return True
    return False


def _difference(old: Ratings, new: Ratings) -> str:
    """Old → new of every field that moved, for the one INFO line."""
    parts = []
    for f in dataclasses.fields(Ratings):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a != b:
            parts.append(f"{f.name} {_show(a)} → {_show(b)}")
    return ", ".join(parts)


def _show(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"
