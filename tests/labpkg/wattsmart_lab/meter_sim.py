"""A simulated SunSpec site meter (models 1 + 203) at the grid connection point, for the lab and tests.

The site's net power is a household's load, less its PV, less what the simulated batteries on the
same server deliver: the meter sees the batteries' own setpoints at work. Time is a parameter:
the load and PV profiles are functions of the server clock's seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hal.inverter import codec
from hal.inverter.sunspec_points import END_MODEL_ID, LENGTHS, POINTS, SUNS_MARKER
from wattsmart_lab.sunspec_device import ILLEGAL_ADDRESS, Faults, SunSpecDevice

METER_MODELS = (1, 203)
_W_SF = 0
_HZ_SF = -2

Profile = Callable[[float], float]


def household_load_w(seconds: float, *, day_s: float = 86400.0) -> float:
    """A household's load at `seconds` into a day of `day_s` seconds, W (deterministic).

    About 300 W at night, a morning peak near 07:30, a long evening peak near 19:00, and a
    kettle-sized 2 kW step for three minutes of every hour (scaled with the day).
    """
    hour = (seconds % day_s) / day_s * 24.0
    morning = 1200.0 * math.exp(-(((hour - 7.5) / 0.8) ** 2))
    evening = 1800.0 * math.exp(-(((hour - 19.0) / 1.6) ** 2))
    kettle = 2000.0 if (hour % 1.0) < 0.05 else 0.0
    return 300.0 + morning + evening + kettle


def no_pv(_: float) -> float:
    """No PV on the site."""
    return 0.0


@dataclass
class MeterDevice:
    """Register image of a simulated SunSpec meter; the server calls `on_access` on every request."""

    device_id: int
    batteries: Sequence[SunSpecDevice] = ()
    load: Profile = household_load_w
    pv: Profile = no_pv
    nominal_hz: float = 60.0
    base: int = 40000
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.layout: dict[int, int] = {}
        self.regs: list[int] = list(SUNS_MARKER)
        for model_id in METER_MODELS:
            self.layout[model_id] = self.base + len(self.regs)
            self.regs += [model_id, LENGTHS[model_id]] + [0] * LENGTHS[model_id]
        self.regs += [END_MODEL_ID, 0]
        self._set(203, "W_SF", _W_SF)
        self._set(203, "Hz_SF", _HZ_SF)
        self.export_w = 0.0

    def _set(self, model_id: int, name: str, value: float) -> None:
        pt = POINTS[model_id][name]
        at = self.layout[model_id] + pt.offset - self.base
        words = codec.encode(value, pt.kind)
        self.regs[at : at + len(words)] = words

    def site_export_w(self, now: float) -> float:
        """The site's net export at `now` (+ export, − import): batteries + PV − load."""
        batteries = 0.0
        for dev in self.batteries:
            dev.on_access(now)  # the battery model advanced to the meter's time
            batteries += dev.battery.power_w
        return batteries + self.pv(now) - self.load(now)

    def refuses_write(self, address: int, values: list[int]) -> int | None:
        """A meter takes no writes."""
        _ = address, values
        return ILLEGAL_ADDRESS

    def on_access(self, now: float, address: int | None = None, values: list[int] | None = None) -> None:
        """Publish the net power at `now` (SunSpec sign: import positive)."""
        _ = address, values
        self.export_w = self.site_export_w(now)
        self._set(203, "W", round(-self.export_w / 10.0**_W_SF))
        self._set(203, "Hz", round(self.nominal_hz / 10.0**_HZ_SF))

    def garbage_overlay(self, words: list[int]) -> None:
        """A meter that reports "not implemented" for its power."""
        at = self.layout[203] + POINTS[203]["W"].offset - self.base
        words[at] = 0x8000
