"""GPIO backends: RPi.GPIO on a Pi (imported lazily), and a fake for tests and machines without pins."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from hal.errors import ConfigurationError

_LOGGER = logging.getLogger(__name__)


class GpioBackend(Protocol):
    """The few pin operations the LED and the button need (BCM pin numbers)."""

    def setup_output(self, pin: int) -> None:
        """Make `pin` an output, initially low."""

    def setup_input(self, pin: int, *, pull_up: bool) -> None:
        """Make `pin` an input with the internal pull-up (or pull-down)."""

    def write(self, pin: int, high: bool) -> None:
        """Drive an output pin."""

    def read(self, pin: int) -> bool:
        """Level of an input pin (True = high)."""

    def close(self) -> None:
        """Release the pins."""


class FakeGpio:
    """In-memory pins: records every output write; tests press the button with `press()`/`release()`."""

    def __init__(self) -> None:
        self.outputs: dict[int, bool] = {}
        self.inputs: dict[int, bool] = {}
        self.writes: list[tuple[int, bool]] = []
        self.closed = False
        self._pull_up: dict[int, bool] = {}

    def __repr__(self) -> str:
        return "fake GPIO"

    def setup_output(self, pin: int) -> None:
        """Register an output pin, initially low."""
        self.outputs[pin] = False

    def setup_input(self, pin: int, *, pull_up: bool) -> None:
        """Register an input pin resting at its pull level."""
        self._pull_up[pin] = pull_up
        self.inputs[pin] = pull_up

    def write(self, pin: int, high: bool) -> None:
        """Record an output write."""
        if pin not in self.outputs:
            raise ValueError(f"pin {pin} is not set up as an output")
        self.outputs[pin] = high
        self.writes.append((pin, high))

    def read(self, pin: int) -> bool:
        """Current level of an input pin."""
        return self.inputs[pin]

    def press(self, pin: int) -> None:
        """Close the button contact: the pin goes to the opposite of its pull level."""
        self.inputs[pin] = not self._pull_up[pin]

    def release(self, pin: int) -> None:
        """Open the button contact: the pin returns to its pull level."""
        self.inputs[pin] = self._pull_up[pin]

    def close(self) -> None:
        """Mark the backend closed."""
        self.closed = True


class RpiGpio:
    """RPi.GPIO (or the rpi-lgpio shim that provides it on Raspberry Pi OS, Pi 5 included)."""

    def __init__(self) -> None:
        try:
            # Imported here, never at module level: machines without the library must still import hal.
            import RPi.GPIO as gpio
        except ImportError as exc:
            raise ConfigurationError(
                "gpio backend 'rpi' needs RPi.GPIO (pip extra 'pi', or python3-rpi-lgpio on "
                "Raspberry Pi OS); use backend 'fake' on machines without pins"
            ) from exc
        self._gpio: Any = gpio
        gpio.setwarnings(False)
        gpio.setmode(gpio.BCM)
        self._pins: list[int] = []

    def __repr__(self) -> str:
        return "RPi.GPIO"

    def setup_output(self, pin: int) -> None:
        """Make `pin` an output, initially low."""
        self._gpio.setup(pin, self._gpio.OUT, initial=self._gpio.LOW)
        self._pins.append(pin)

    def setup_input(self, pin: int, *, pull_up: bool) -> None:
        """Make `pin` an input with a pull resistor."""
        pull = self._gpio.PUD_UP if pull_up else self._gpio.PUD_DOWN
        self._gpio.setup(pin, self._gpio.IN, pull_up_down=pull)
        self._pins.append(pin)

    def write(self, pin: int, high: bool) -> None:
        """Drive an output pin."""
        self._gpio.output(pin, self._gpio.HIGH if high else self._gpio.LOW)

    def read(self, pin: int) -> bool:
        """Level of an input pin."""
        return bool(self._gpio.input(pin))

    def close(self) -> None:
        """Return the pins to inputs."""
        if self._pins:
            self._gpio.cleanup(self._pins)
            self._pins = []
