"""The status LED and the push button on GPIO pins, driven from asyncio.

The button wakes its owner on the line's edge events where the backend has them (the gpiochip
backend: a descriptor asyncio waits on), and is polled otherwise (RPi.GPIO, the fake).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from hal.errors import ConfigurationError
from hal.gpio.backend import FakeGpio, GpioBackend, RpiGpio
from hal.gpio.button import Press, PressTimings, PressTracker
from hal.gpio.chardev import CharDevice, GpiochipGpio
from hal.gpio.patterns import Colour, LedState, colour_at

_LOGGER = logging.getLogger(__name__)

_LED_REFRESH_S = 0.05
BACKENDS = ("auto", "gpiochip", "rpi", "fake")


@dataclass(frozen=True)
class GpioSettings:
    """Which backend, which BCM pins, and how the LED and button are wired."""

    #: auto: the gpiochip where one is labelled as the SoC's, else RPi.GPIO, else no LED at all
    backend: Literal["auto", "gpiochip", "rpi", "fake"] = "fake"
    led_red: int | None = 17
    led_green: int | None = 27
    led_blue: int | None = 22
    led_active_low: bool = False
    button: int | None = 23
    button_active_low: bool = True
    poll_s: float = 0.02
    timings: PressTimings = field(default_factory=PressTimings)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"gpio backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
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

    async def run(
        self, state: Callable[[], LedState], monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        """Keep rendering `state()` until cancelled (the owner keeps the task)."""
        try:
            while True:
                self.render(state(), monotonic())
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

    @property
    def has_edges(self) -> bool:
        """Whether the backend wakes us on the line's edges (else the owner polls)."""
        return _edge_fd(self._backend, self._pin) is not None

    async def wait_edge(self) -> bool:
        """Sleep until the line changes (True), or return False at once without edge events."""
        fd = _edge_fd(self._backend, self._pin)
        if fd is None:
            return False
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        drain = getattr(self._backend, "drain_edges", None)
        if drain is not None:
            drain(self._pin)
        return True

    async def presses(self, monotonic: Callable[[], float] = time.monotonic) -> AsyncIterator[Press]:
        """Yield each press as it is released: sampled while held, asleep on edges while idle."""
        while True:
            press = self.sample(monotonic())
            if press is not None:
                _LOGGER.info("button: %s press", press.value)
                yield press
            if not (self.tracker.idle and await self.wait_edge()):
                await asyncio.sleep(self._poll_s)


class Gpio:
    """The LED and the button of one board, over one backend; an async context manager."""

    def __init__(self, settings: GpioSettings, backend: GpioBackend | None = None) -> None:
        self.settings = settings
        if backend is None:
            backend = open_backend(settings.backend)
        if backend is None:
            raise ConfigurationError("no GPIO on this machine (no SoC gpiochip, no RPi.GPIO)")
        self.backend: GpioBackend = backend
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


def _edge_fd(backend: GpioBackend, pin: int) -> int | None:
    edge_fd = getattr(backend, "edge_fd", None)
    return edge_fd(pin) if edge_fd is not None else None


def open_backend(kind: str, *, device: CharDevice | None = None) -> GpioBackend | None:
    """The backend `kind` names; for 'auto' the first that works, or None (logged once) if none does.

    `device` stands in for the kernel's GPIO character device (tests, and the image test's fake).
    """
    if kind == "fake":
        return FakeGpio()
    if kind == "rpi":
        return RpiGpio()
    if kind == "gpiochip":
        return GpiochipGpio(device)
    if kind != "auto":
        raise ConfigurationError(f"unknown gpio backend {kind!r}")
    reasons = []
    try:
        chip = GpiochipGpio(device)
    except ConfigurationError as exc:
        reasons.append(str(exc))
    else:
        _LOGGER.info("GPIO: %r", chip)
        return chip
    if device is None:  # RPi.GPIO only on a real machine, never beside a fake character device
        try:
            rpi = RpiGpio()
        except Exception as exc:  # RPi.GPIO raises RuntimeError off a Pi
            reasons.append(f"RPi.GPIO: {exc}")
        else:
            _LOGGER.info("GPIO: RPi.GPIO")
            return rpi
    _LOGGER.warning("no GPIO: running without the status LED and button (%s)", "; ".join(reasons))
    return None


def open_gpio(settings: GpioSettings, *, device: CharDevice | None = None) -> Gpio | None:
    """The LED and button on the configured backend; None when 'auto' finds no GPIO at all."""
    backend = open_backend(settings.backend, device=device)
    return Gpio(settings, backend) if backend is not None else None
