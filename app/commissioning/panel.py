"""The box's front panel: the status LED and the push button, driven from the gateway's state.

The LED loop wakes only at the pattern's next edge (or once a second to pick up a new state),
not at a fixed refresh rate: a box runs for years and every wake-up costs CPU. The button sleeps
on the line's edge events where the backend has them (gpiochip) and is sampled at 50 Hz only
while held; without edge events (RPi.GPIO, whose callbacks run on its own thread, and the fake)
it is polled at 10 Hz while idle, which is enough to see a tap.

Presses: short = self-test, result shown on the LED for a few seconds; long (5–10 s) =
commissioning mode; held ≥ 10 s at power-on = reset the gateway's state (never the identity).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from app.config import GpioConfig
from hal.gpio import Gpio, GpioSettings, LedState, open_gpio
from hal.gpio.patterns import PATTERNS

_LOGGER = logging.getLogger(__name__)

#: the LED re-reads the gateway's state at least this often
STATE_RECHECK_S = 1.0
IDLE_POLL_S = 0.1
HELD_POLL_S = 0.02
#: how long a self-test result stays on the LED
RESULT_SHOW_S = 5.0
#: a hold at power-on this long, then a release, resets state (the LED turns green: let go now)
RESET_HOLD_S = 10.0
#: held longer than this, the button is stuck: no reset
STUCK_S = 30.0

PressHandler = Callable[[str], Awaitable[None]]


def next_edge(state: LedState, t: float) -> float:
    """The next time after `t` at which the pattern of `state` switches on or off."""
    pattern = PATTERNS[state]
    period = pattern.period_s
    base = t - (t % period)
    edges = sorted({e for interval in pattern.on for e in interval})
    for cycle in (base, base + period):
        for edge in edges:
            when = cycle + edge
            if when > t + 1e-9:
                return when
    return base + 2 * period  # no edges at all (solid): the caller re-checks the state anyway


def gpio_settings(cfg: GpioConfig) -> GpioSettings | None:
    """HAL settings for the configured pins; None when the box has no panel (`backend: none`)."""
    if cfg.backend == "none":
        return None
    return GpioSettings(
        backend=cfg.backend,
        led_red=cfg.led_red,
        led_green=cfg.led_green,
        led_blue=cfg.led_blue,
        button=cfg.button,
        button_active_low=cfg.button_active_low,
        poll_s=HELD_POLL_S,
    )


class Panel:
    """Shows `state()` on the LED and turns button presses into `on_press(kind)` calls."""

    def __init__(
        self,
        cfg: GpioConfig,
        state: Callable[[], LedState],
        on_press: PressHandler,
        *,
        gpio: Gpio | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        settings = gpio_settings(cfg)
        if gpio is None and settings is not None:
            gpio = open_gpio(settings)  # None when `auto` finds no GPIO (logged there)
        self.gpio = gpio
        self._state = state
        self._on_press = on_press
        self._monotonic = monotonic
        self._sleep = sleep
        self.override: tuple[LedState, float] | None = None

    def shown_state(self) -> LedState:
        """The state on the LED now: a self-test result for a few seconds, else the gateway's."""
        if self.override is not None:
            state, until = self.override
            if self._monotonic() < until:
                return state
            self.override = None
        return self._state()

    def show_result(self, ok: bool) -> None:
        """Show a self-test result: OK's steady green, or the fault blink."""
        self.override = (LedState.OK if ok else LedState.FAULT, self._monotonic() + RESULT_SHOW_S)

    async def held_at_power_on(self) -> bool:
        """True when the button, held from start-up, is let go after RESET_HOLD_S (and before STUCK_S)."""
        if self.gpio is None or self.gpio.button is None or not self.gpio.button.pressed():
            return False
        _LOGGER.warning(
            "button held at power-on: hold %d s, until the LED turns green, then let go to reset the state",
            RESET_HOLD_S,
        )
        started = self._monotonic()
        while self.gpio.button.pressed():
            held = self._monotonic() - started
            if held >= STUCK_S:
                # a stuck button (or a wrong button_active_low) must not wipe the state at every boot
                _LOGGER.error("button held for %d s at power-on: stuck or miswired; no reset", held)
                return False
            self.gpio.led.render(LedState.FAULT if held < RESET_HOLD_S else LedState.OK, self._monotonic())
            await self._sleep(HELD_POLL_S)
        return self._monotonic() - started >= RESET_HOLD_S

    async def run(self) -> None:
        """Drive the LED and watch the button until cancelled."""
        if self.gpio is None:
            await asyncio.Event().wait()  # no panel on this box; nothing to do, nothing to wake for
            return
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._led_loop(self.gpio))
            if self.gpio.button is not None:
                tasks.create_task(self._button_loop(self.gpio))

    async def _led_loop(self, gpio: Gpio) -> None:
        while True:
            now = self._monotonic()
            state = self.shown_state()
            gpio.led.render(state, now)
            await self._sleep(max(min(next_edge(state, now), now + STATE_RECHECK_S) - now, 0.01))

    async def _button_loop(self, gpio: Gpio) -> None:
        button = gpio.button
        assert button is not None
        while True:
            press = button.sample(self._monotonic())
            if press is not None:
                _LOGGER.info("button: %s press", press.value)
                try:
                    await self._on_press(press.value)
                except Exception:
                    _LOGGER.exception("button action %s failed", press.value)
            if button.tracker.idle and await button.wait_edge():
                continue  # woken by an edge: sample it at once
            await self._sleep(HELD_POLL_S if button.pressed() else IDLE_POLL_S)

    def close(self) -> None:
        """Turn the LED off and release the pins."""
        if self.gpio is not None:
            self.gpio.close()
