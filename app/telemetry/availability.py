"""DERAvailability: what the battery can still deliver and take, PUT at start-up and on a real change.

The values follow from the state of charge, the usable capacity, the configured SoC limits (the
executor never drives the battery beyond them) and the charge/discharge limits DERSettings reports:

* statWAvail: the discharge limit while the SoC is above its minimum, else 0 W.
* reservePercent: statWAvail as a share of setMaxW; reserveChargePercent: the charge the battery can
  still take as a share of setMaxChargeRateW (0 at the maximum SoC).
* availabilityDuration / maxChargeDuration: how long, in seconds, the energy between the SoC and the
  minimum (the room up to the maximum) lasts at that power.
* statVarAvail is left out: no battery profile reports a reactive power rating.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from app.client.errors import Rejected
from app.client.port import ServerPort
from app.health import Health
from app.sep.der import DERAvailability
from app.sep.types import ActivePower
from app.telemetry.der import Nameplate

_LOGGER = logging.getLogger(__name__)

#: the status page's part for a DERAvailability the server refused
PART: Final = "telemetry.availability"

#: The SoC must move this many percentage points from the one last sent before DERAvailability is
#: sent again (a limit crossed or a rating changed sends at once). 5 points of a 10 kWh battery is
#: 500 Wh, six minutes at 5 kW: finer than any event a utility schedules on it, and at most 20 PUTs
#: (about 25 kB) per full charge or discharge instead of one per 30-s reading; nothing is written to
#: flash (what was sent is kept in memory; a restart sends once more).
SOC_DEADBAND_PCT: Final = 5.0


@dataclass(frozen=True, slots=True)
class SocLimits:
    """The state-of-charge window the battery is driven in, percent."""

    min_pct: float
    max_pct: float

    def __post_init__(self) -> None:
        if not self.min_pct < self.max_pct:
            raise ValueError(f"SoC limits: min {self.min_pct} must be below max {self.max_pct}")


def der_availability(plate: Nameplate, soc_pct: float, limits: SocLimits, at: datetime) -> DERAvailability:
    """DERAvailability of a battery at `soc_pct` read at server time `at`; unknown values left out."""
    soc = min(100.0, max(0.0, soc_pct))
    low, high = max(0.0, limits.min_pct), min(100.0, limits.max_pct)
    can_give = soc > low
    can_take = soc < high
    give_w = _available(plate.set_max_discharge_w, can_give)
    take_w = _available(plate.set_max_charge_w, can_take)
    return DERAvailability(
        availabilityDuration=_duration(plate.max_wh, soc - low, give_w),
        maxChargeDuration=_duration(plate.max_wh, high - soc, take_w),
        readingTime=at,
        reserveChargePercent=_share(take_w, plate.set_max_charge_w),
        reservePercent=_share(give_w, plate.set_max_w),
        statWAvail=None if give_w is None else ActivePower.from_watts(give_w),
    )


def _available(limit_w: float | None, possible: bool) -> float | None:
    if limit_w is None:
        return None
    return limit_w if possible else 0.0


def _share(watts: float | None, of_w: float | None) -> int | None:
    """`watts` as hundredths of a percent of `of_w` (PerCent), at most 100 %."""
    if watts is None or not of_w:
        return None
    return min(10000, round(watts / of_w * 10000))


def _duration(capacity_wh: float | None, window_pct: float, watts: float | None) -> int | None:
    """Seconds the energy in `window_pct` of the capacity lasts at `watts` (0 when there is none)."""
    if capacity_wh is None or watts is None:
        return None
    if watts <= 0 or window_pct <= 0:
        return 0
    return min(0xFFFFFFFF, round(capacity_wh * window_pct / 100.0 / watts * 3600.0))


class AvailabilityReporter:
    """Keeps the server's DERAvailability current without a PUT for every reading.

    Sent at start-up (the first reading with known ratings), then when the nameplate changes, a SoC
    limit is reached or left (statWAvail or a reserve changes), or the SoC has moved
    SOC_DEADBAND_PCT points from the one last sent. A refused document is not sent again until one
    of those happens.
    """

    def __init__(
        self, server: ServerPort, href: str | None, limits: SocLimits, health: Health | None = None
    ) -> None:
        self._server = server
        self.href = href
        self._limits = limits
        self._health = health
        self._sent: tuple[Nameplate, float, DERAvailability] | None = None
        self.sent = 0

    def due(self, plate: Nameplate, soc_pct: float) -> bool:
        """True when a reading at `soc_pct` with `plate` is worth a PUT."""
        if self._sent is None:
            return True
        sent_plate, sent_soc, sent = self._sent
        if plate != sent_plate or abs(soc_pct - sent_soc) >= SOC_DEADBAND_PCT:
            return True
        now = der_availability(plate, soc_pct, self._limits, sent.readingTime)
        return (now.statWAvail, now.reservePercent, now.reserveChargePercent) != (
            sent.statWAvail,
            sent.reservePercent,
            sent.reserveChargePercent,
        )

    def forget(self) -> None:
        """Send the next reading whatever it holds (the server moved the resource)."""
        self._sent = None

    async def send(self, plate: Nameplate | None, soc_pct: float | None, at: datetime) -> None:
        """PUT DERAvailability for this reading if it is due; nothing without a link, ratings or SoC."""
        if self.href is None or plate is None or soc_pct is None or not self.due(plate, soc_pct):
            return
        document = der_availability(plate, soc_pct, self._limits, at)
        try:
            await self._server.put(self.href, document)
        except Rejected as exc:
            # the same values would be refused again: wait for a change worth sending
            _LOGGER.error("Server refused DERAvailability: %s; sent again when the values change", exc)
            if self._health is not None:
                self._health.problem(PART, f"server refused DERAvailability: {exc}", exc.kind)
        else:
            self.sent += 1
            if self._health is not None:
                self._health.ok(PART)
        self._sent = (plate, soc_pct, document)
