"""Push-button press classification: pure functions of samples and times, no GPIO here.

| press        | held for        | typical use (decided by the app)          |
|--------------|-----------------|-------------------------------------------|
| SHORT        | 0.05 s – 2 s    | identify / replay the status              |
| (ignored)    | 2 s – 5 s       | too long for short, too short for long    |
| LONG         | 5 s – 10 s      | enter commissioning mode                  |
| VERY_LONG    | 10 s – 30 s     | factory reset (the app may ask for more)  |
| (ignored)    | over 30 s       | a stuck button or something leaning on it |

Levels are debounced: a change counts only once it has been stable for `debounce_s`.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass


class Press(enum.Enum):
    """A classified button press."""

    SHORT = "short"
    LONG = "long"
    VERY_LONG = "very_long"


@dataclass(frozen=True)
class PressTimings:
    """Thresholds of press classification, seconds."""

    debounce_s: float = 0.05
    short_max_s: float = 2.0
    long_min_s: float = 5.0
    very_long_min_s: float = 10.0
    cancel_after_s: float = 30.0

    def __post_init__(self) -> None:
        order = (
            self.debounce_s,
            self.short_max_s,
            self.long_min_s,
            self.very_long_min_s,
            self.cancel_after_s,
        )
        if not all(a < b for a, b in itertools.pairwise(order)) or self.debounce_s < 0:
            raise ValueError(f"press thresholds must increase: {order}")


def classify(held_s: float, timings: PressTimings = PressTimings()) -> Press | None:
    """Classify one press by how long it was held; None for an ignored band."""
    if held_s < timings.debounce_s or held_s > timings.cancel_after_s:
        return None
    if held_s <= timings.short_max_s:
        return Press.SHORT
    if held_s < timings.long_min_s:
        return None
    if held_s < timings.very_long_min_s:
        return Press.LONG
    return Press.VERY_LONG


class PressTracker:
    """Debounces sampled button levels and reports a `Press` when the button is released."""

    def __init__(self, timings: PressTimings = PressTimings()) -> None:
        self.timings = timings
        self._stable = False
        self._raw = False
        self._raw_since = 0.0
        self._pressed_at: float | None = None

    def update(self, pressed: bool, now: float) -> Press | None:
        """Feed one sample (True = pressed) taken at `now`; returns a press on its release."""
        if pressed != self._raw:
            self._raw, self._raw_since = pressed, now
        if self._raw == self._stable or now - self._raw_since < self.timings.debounce_s:
            return None
        self._stable = self._raw
        if self._stable:
            self._pressed_at = self._raw_since
            return None
        started, self._pressed_at = self._pressed_at, None
        return None if started is None else classify(self._raw_since - started, self.timings)

    @property
    def idle(self) -> bool:
        """Released and settled: nothing will happen until the level changes (edge-wait is safe)."""
        return not self._raw and not self._stable

    def held_s(self, now: float) -> float | None:
        """How long the button has been held down so far (for LED feedback), or None."""
        return None if self._pressed_at is None else now - self._pressed_at

    def stage(self, now: float) -> Press | None:
        """What releasing now would report: lets the LED confirm "long reached" while still held."""
        held = self.held_s(now)
        return None if held is None else classify(held, self.timings)


def classify_samples(
    samples: Iterable[tuple[float, bool]], timings: PressTimings = PressTimings()
) -> list[Press]:
    """All presses in a series of (time, pressed) samples."""
    tracker = PressTracker(timings)
    presses = []
    for now, pressed in samples:
        press = tracker.update(pressed, now)
        if press is not None:
            presses.append(press)
    return presses
