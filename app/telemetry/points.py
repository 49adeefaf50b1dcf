"""The mirrored data points (Real Power, Frequency) and how their values go on the wire."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from app.sep.metering_mirror import Uom
from hal.inverter import Telemetry

# mRIDType: 128 bits whose least significant 32 are the owner's IANA Private Enterprise Number.
# Wattsmart has none registered yet; 0 keeps the field honest until one is.
IANA_PEN: Final = 0


@dataclass(frozen=True, slots=True)
class DataPoint:
    """One mirrored quantity: its outbox key, its unit and the resolution it is sent with."""

    key: str
    description: str
    uom: Uom
    #: ReadingType.powerOfTenMultiplier: wire value × 10^power_of_ten = plain unit
    power_of_ten: int
    #: measured by the site meter at the grid connection point, not by the battery inverter
    site: bool = False

    @property
    def field(self) -> str:
        """The Telemetry field this point mirrors."""
        return "w" if self.uom is Uom.W else "hz"

    def value_of(self, sample: Telemetry) -> float | None:
        """The plain-unit value of this point in an inverter reading (None = unknown)."""
        return sample.w if self.uom is Uom.W else sample.hz

    def questionable_of(self, sample: Telemetry) -> float | None:
        """The value the inverter reported that failed a plausibility check (sent flagged), if any."""
        return sample.suspect.get(self.field)

    def to_wire(self, value: float) -> int:
        """A plain-unit value as the integer sent (e.g. 50.01 Hz → 5001 at −2)."""
        return round(value / 10.0**self.power_of_ten)

    def from_wire(self, value: int) -> float:
        """The integer sent back in the plain unit."""
        return value * 10.0**self.power_of_ten


#: Reading.qualityFlags bit 4: "questionable: data that has failed one or more checks"
QUESTIONABLE: Final = 1 << 4

POWER: Final = DataPoint("W", "Real Power (W)", Uom.W, 0)
FREQUENCY: Final = DataPoint("Hz", "Frequency (Hz)", Uom.HZ, -2)
POINTS: Final = (POWER, FREQUENCY)
#: the site's net power at the connection point (+ export), mirrored when a site meter is configured
SITE_POWER: Final = DataPoint("SiteW", "Site Real Power at the connection point (W)", Uom.W, 0, site=True)


def derive_mrid(lfdi: str, *parts: str) -> str:
    """A stable 128-bit mRID (32 hex digits) from the device's LFDI and a name, e.g. ('mup', 'W')."""
    seed = ":".join((lfdi.lower(), *parts)).encode()
    return hashlib.sha256(seed).hexdigest()[:24].upper() + f"{IANA_PEN:08X}"
