"""The status LED and the push button on GPIO pins, driven from asyncio (polled, no edge callbacks)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from hal.gpio.backend import FakeGpio, GpioBackend, RpiGpio
from hal.gpio.button import Press, PressTimings, PressTracker
from hal.gpio.patterns import Colour, LedState, colour_at

_LOGGER = logging.getLogger(__name__)

_LED_REFRESH_S = 0.05


@dataclass(frozen=True)
class GpioSettings:
    """Which backend, which BCM pins, and how the LED and button are wired."""

    backend: Literal["rpi", "fake"] = "fake"
    led_red: int | None = 17
    led_green: int | None = 27
    led_blue: int | None = 22
    led_active_low: bool = False
    button: int | None = 23
    button_active_low: bool = True
    poll_s: float = 0.02
    timings: PressTimings = field(default_factory=PressTimings)

    def __post_init__(self) -> None:
        if self.backend not in ("rpi", "fake"):
            raise ValueError(f"gpio backend must be 'rpi' or 'fake', got {self.backend!r}")
        pins = [p for p in (self.led_red, self.led_green, self.led_blue, self.button) if p is not None]
        for pin in pins:
            if not 0 <= pin <= 27:
                raise ValueError(f"GPIO pins are BCM numbers 0..27, got {pin}")
        if len(set(pins)) != len(pins):
            raise ValueError(f"GPIO pins must be distinct, got {pins}")
        if self.led_red is None and self.led_green is None:
            raise ValueError("the status LED needs at least a red or a green pin")
        if not 0.005 <= self.poll_s <= 0.2:
            raise ValueError(f"poll_s must be within 0.005..0.2, got {self.poll_s}")


class StatusLed:
    """Drives the red/green/blue LED pins from a `LedState`, writing only changes."""

    def __init__(self, backend: GpioBackend, settings: GpioSettings) -> None:
        self._backend = backend
        self._active_low = settings.led_active_low
        self._pins = {"red": settings.led_red, "green": settings.led_green, "blue": settings.led_blue}
        self._levels: dict[int, bool] = {}
        for pin in self._pins.values():
            if pin is not None:
                backend.setup_output(pin)
                self._drive(pin, False)

    def _drive(self, pin: int, lit: bool) -> None:
        if self._levels.get(pin) == lit:
            return
        self._levels[pin] = lit
        self._backend.write(pin, lit != self._active_low)

    def show(self, colour: Colour) -> None:
        """Light exactly the elements of `colour`; blue falls back to green without a blue pin."""
        red, green, blue = colour.red, colour.green, colour.blue
        if self._pins["blue"] is None and blue:
            green = True
        for name, lit in (("red", red), ("green", green), ("blue", blue)):
            pin = self._pins[name]
            if pin is not None:
                self._drive(pin, lit)

    def render(self, state: LedState, now: float) -> Colour:
        """Show the pattern of `state` at time `now` and return the colour shown."""
        colour = colour_at(state, now)
        self.show(colour)
        return colour

    async def run(self, state: Callable[[], LedState], clock: Callable[[], float] = time.monotonic) -> None:
        """Keep rendering `state()` until cancelled (the owner keeps the task)."""
        try:
            while True:
                self.render(state(), clock())
                await asyncio.sleep(_LED_REFRESH_S)
        finally:
            self.show(Colour())


class Button:
    """The push button, polled from asyncio; yields classified presses."""

    def __init__(self, backend: GpioBackend, settings: GpioSettings) -> None:
        if settings.button is None:
            raise ValueError("no button pin configured")
        self._backend = backend
        self._pin = settings.button
        self._active_low = settings.button_active_low
        self._poll_s = settings.poll_s
        self.tracker = PressTracker(settings.timings)
        backend.setup_input(self._pin, pull_up=self._active_low)

    def pressed(self) -> bool:
        """Whether the contact is closed right now."""
        return self._backend.read(self._pin) != self._active_low

    def sample(self, now: float) -> Press | None:
        """Take one sample at `now`; returns a press when one has just ended."""
        return self.tracker.update(self.pressed(), now)

    async def presses(self, clock: Callable[[], float] = time.monotonic) -> AsyncIterator[Press]:
        """Poll forever, yielding each press as it is released."""
        while True:
            press = self.sample(clock())
            if press is not None:
                _LOGGER.info("button: %s press", press.value)
                yield press
            await asyncio.sleep(self._poll_s)


class Gpio:
    """The LED and the button of one board, over one backend; an async context manager."""

    def __init__(self, settings: GpioSettings, backend: GpioBackend | None = None) -> None:
        self.settings = settings
        self.backend: GpioBackend = backend or (RpiGpio() if settings.backend == "rpi" else FakeGpio())
        self.led = StatusLed(self.backend, settings)
        self.button = Button(self.backend, settings) if settings.button is not None else None

    def close(self) -> None:
        """Turn the LED off and release the pins."""
        self.led.show(Colour())
        self.backend.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_gpio(settings: GpioSettings) -> Gpio:
    """Build the LED and button on the configured backend ('fake' needs no hardware)."""
    return Gpio(settings)
