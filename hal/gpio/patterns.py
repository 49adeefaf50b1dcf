"""Status LED states and their blink patterns: pure functions of (state, time).

One RGB LED (or separate red/green/blue LEDs; amber = red + green). When several conditions hold,
the highest-priority state is shown. Patterns repeat with the period given:

| priority | state          | colour | pattern                                        | period |
|---------:|----------------|--------|------------------------------------------------|-------:|
|        1 | FAULT          | red    | fast blink, 0.25 s on / 0.25 s off             |  0.5 s |
|        2 | UPDATING       | green  | rapid flicker, 0.125 s on / off (do not unplug) | 0.25 s |
|        3 | NOT_COMMISSIONED | white | 1.5 s on / 1.5 s off (no config or no certificate) | 3 s |
|        4 | BOOTING        | amber  | slow blink, 0.5 s on / 0.5 s off               |    1 s |
|        5 | NO_NETWORK     | amber  | 1 short blink                                  |    3 s |
|        6 | NO_SERVER      | amber  | 2 short blinks                                 |    3 s |
|        7 | NOT_REGISTERED | amber  | 3 short blinks                                 |    3 s |
|        8 | NO_INVERTER    | red    | 2 short blinks                                 |    3 s |
|        9 | COMMISSIONING  | blue   | double blink                                   |    2 s |
|       10 | ATTENTION      | blue   | 1 s on / 1 s off                               |    2 s |
|       11 | OK             | green  | solid, dark for 0.1 s every 5 s (heartbeat)    |    5 s |

A short blink is 0.2 s on, 0.3 s off. White is all three elements. Without a blue LED, blue
states show on green and white on amber (their rhythms still differ from OK's and BOOTING's).
The gateway shows COMMISSIONING rather than NOT_COMMISSIONED while commissioning mode is on.
The state name, colour and rhythm together are distinct for
every state, so an installer can tell them apart with the table in hand.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LedState(enum.IntEnum):
    """What the status LED shows; a lower value wins (priority order)."""

    FAULT = 1
    UPDATING = 2
    NOT_COMMISSIONED = 3
    BOOTING = 4
    NO_NETWORK = 5
    NO_SERVER = 6
    NOT_REGISTERED = 7
    NO_INVERTER = 8
    COMMISSIONING = 9
    ATTENTION = 10
    OK = 11


@dataclass(frozen=True)
class Colour:
    """Which of the red, green and blue elements are lit."""

    red: bool = False
    green: bool = False
    blue: bool = False


OFF = Colour()
RED = Colour(red=True)
GREEN = Colour(green=True)
BLUE = Colour(blue=True)
AMBER = Colour(red=True, green=True)
WHITE = Colour(red=True, green=True, blue=True)


@dataclass(frozen=True)
class Pattern:
    """A colour lit during the `on` intervals (seconds) of a repeating period."""

    colour: Colour
    period_s: float
    on: tuple[tuple[float, float], ...]

    def lit(self, t: float) -> bool:
        """Whether the LED is on at time `t` (any monotonic seconds)."""
        phase = t % self.period_s
        return any(start <= phase < end for start, end in self.on)


def _blinks(count: int) -> tuple[tuple[float, float], ...]:
    return tuple((i * 0.5, i * 0.5 + 0.2) for i in range(count))


PATTERNS: dict[LedState, Pattern] = {
    LedState.FAULT: Pattern(RED, 0.5, ((0.0, 0.25),)),
    LedState.UPDATING: Pattern(GREEN, 0.25, ((0.0, 0.125),)),
    LedState.NOT_COMMISSIONED: Pattern(WHITE, 3.0, ((0.0, 1.5),)),
    LedState.BOOTING: Pattern(AMBER, 1.0, ((0.0, 0.5),)),
    LedState.NO_NETWORK: Pattern(AMBER, 3.0, _blinks(1)),
    LedState.NO_SERVER: Pattern(AMBER, 3.0, _blinks(2)),
    LedState.NOT_REGISTERED: Pattern(AMBER, 3.0, _blinks(3)),
    LedState.NO_INVERTER: Pattern(RED, 3.0, _blinks(2)),
    LedState.COMMISSIONING: Pattern(BLUE, 2.0, ((0.0, 0.15), (0.3, 0.45))),
    LedState.ATTENTION: Pattern(BLUE, 2.0, ((0.0, 1.0),)),
    LedState.OK: Pattern(GREEN, 5.0, ((0.1, 5.0),)),
}


def highest(states: set[LedState] | frozenset[LedState]) -> LedState:
    """The state to show when several hold: the highest priority, OK when none."""
    return min(states, default=LedState.OK)


def colour_at(state: LedState, t: float) -> Colour:
    """The LED colour for `state` at time `t`: the pure core of the status LED."""
    pattern = PATTERNS[state]
    return pattern.colour if pattern.lit(t) else OFF
