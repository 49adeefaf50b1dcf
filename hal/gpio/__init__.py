"""Status LED and push button: pure patterns and press classification, RPi.GPIO and fake backends."""

from hal.gpio.backend import FakeGpio, GpioBackend, RpiGpio
from hal.gpio.button import Press, PressTimings, PressTracker, classify, classify_samples
from hal.gpio.device import Button, Gpio, GpioSettings, StatusLed, open_gpio
from hal.gpio.patterns import PATTERNS, Colour, LedState, colour_at, highest

__all__ = [
    "PATTERNS",
    "Button",
    "Colour",
    "FakeGpio",
    "Gpio",
    "GpioBackend",
    "GpioSettings",
    "LedState",
    "Press",
    "PressTimings",
    "PressTracker",
    "RpiGpio",
    "StatusLed",
    "classify",
    "classify_samples",
    "colour_at",
    "highest",
    "open_gpio",
]
