"""Status LED and push button: pure patterns, press classification; gpiochip, RPi.GPIO and fake backends."""

from hal.gpio.backend import FakeGpio, GpioBackend, RpiGpio
from hal.gpio.button import Press, PressTimings, PressTracker, classify, classify_samples
from hal.gpio.chardev import SOC_LABELS, CharDevice, GpiochipGpio, GpiodDevice, find_soc_chip
from hal.gpio.device import BACKENDS, Button, Gpio, GpioSettings, StatusLed, open_backend, open_gpio
from hal.gpio.fake import FakeCharDevice, FakeChip
from hal.gpio.patterns import PATTERNS, Colour, LedState, colour_at, highest

__all__ = [
    "BACKENDS",
    "PATTERNS",
    "SOC_LABELS",
    "Button",
    "CharDevice",
    "Colour",
    "FakeCharDevice",
    "FakeChip",
    "FakeGpio",
    "Gpio",
    "GpioBackend",
    "GpioSettings",
    "GpiochipGpio",
    "GpiodDevice",
    "LedState",
    "Press",
    "PressTimings",
    "PressTracker",
    "RpiGpio",
    "StatusLed",
    "classify",
    "classify_samples",
    "colour_at",
    "find_soc_chip",
    "highest",
    "open_backend",
    "open_gpio",
]
