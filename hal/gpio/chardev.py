"""GPIO through the kernel's GPIO character device (/dev/gpiochipN), via the libgpiod v2 binding.

Works on every Raspberry Pi and kernel (uAPI v2, Linux >= 5.10), the Pi 5's RP1 included, and
needs no root: the gpio group owns the chip (deploy/udev). Pins stay BCM numbers: on the SoC's
chip the line offset is the BCM number. The chip is found by its label, never by its number
(gpiochip0 on one kernel is gpiochip4 on another); `deploy/udev` also names it
/dev/gpiochip-header, the one GPIO device the systemd unit allows.

The button's line is requested with edge detection where the chip offers it: the panel then
sleeps on the request's file descriptor while nobody touches the button, instead of polling.

`CharDevice` is the seam: `GpiodDevice` talks to the kernel, `FakeCharDevice` (hal/gpio/fake.py)
keeps chips and lines in memory for tests and machines without a gpiochip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hal.errors import ConfigurationError

_LOGGER = logging.getLogger(__name__)

#: labels of the SoC's GPIO chip (the header's pins): Pi 1-3 and Zero, Pi 4, Pi 5 (RP1)
SOC_LABELS = ("pinctrl-bcm2835", "pinctrl-bcm2711", "pinctrl-rp1")
#: where the chips are; deploy/udev adds the stable link gpiochip-header to the SoC's chip
DEV_DIR = Path("/dev")
CONSUMER = "wattsmart-gateway"


class LineRequest(Protocol):
    """One requested line (one offset of one chip)."""

    def set(self, high: bool) -> None:
        """Drive the line (outputs)."""

    def get(self) -> bool:
        """The line's level (True = high)."""

    def edge_fd(self) -> int | None:
        """A descriptor that turns readable on an edge, or None without edge detection."""

    def drain_edges(self) -> int:
        """Read the pending edge events; returns how many there were."""

    def release(self) -> None:
        """Give the line back to the kernel."""


class CharDevice(Protocol):
    """The few character-device operations the backend needs."""

    def chips(self) -> Sequence[Path]:
        """Paths of the GPIO chips present."""

    def label(self, chip: Path) -> tuple[str, int]:
        """The chip's label and number of lines (OSError when it cannot be opened)."""

    def request_output(self, chip: Path, offset: int) -> LineRequest:
        """Request `offset` as an output, initially low."""

    def request_input(self, chip: Path, offset: int, *, pull_up: bool, edges: bool) -> LineRequest:
        """Request `offset` as an input with a pull resistor, with edge events if `edges`."""


@dataclass(frozen=True)
class FoundChip:
    """The SoC's chip, as found."""

    path: Path
    label: str
    lines: int


def find_soc_chip(device: CharDevice, labels: Sequence[str] = SOC_LABELS) -> FoundChip:
    """The chip carrying the header's pins, by label; ConfigurationError naming what was seen."""
    seen: list[str] = []
    done: set[Path] = set()
    for path in device.chips():
        real = path.resolve()
        if real in done:
            continue
        done.add(real)
        try:
            label, lines = device.label(path)
        except OSError as exc:  # e.g. a chip the unit's DeviceAllow leaves out
            seen.append(f"{path}: {exc.strerror or exc}")
            continue
        if label in labels:
            return FoundChip(path, label, lines)
        seen.append(f"{path}: {label}")
    found = "; ".join(seen) if seen else "no GPIO chip at all"
    raise ConfigurationError(f"no GPIO chip labelled {' or '.join(labels)} ({found})")


class GpiochipGpio:
    """The GpioBackend over the character device: one line request per pin."""

    def __init__(self, device: CharDevice | None = None, labels: Sequence[str] = SOC_LABELS) -> None:
        self.device: CharDevice = device if device is not None else GpiodDevice()
        self.chip = find_soc_chip(self.device, labels)
        self._lines: dict[int, LineRequest] = {}

    def __repr__(self) -> str:
        return f"gpiochip {self.chip.path} ({self.chip.label})"

    def _check(self, pin: int) -> None:
        if pin in self._lines:
            raise ValueError(f"pin {pin} is already set up")
        if not 0 <= pin < self.chip.lines:
            raise ConfigurationError(f"pin {pin} is not on {self.chip.label} ({self.chip.lines} lines)")

    def setup_output(self, pin: int) -> None:
        """Make `pin` an output, initially low."""
        self._check(pin)
        self._lines[pin] = self.device.request_output(self.chip.path, pin)

    def setup_input(self, pin: int, *, pull_up: bool) -> None:
        """Make `pin` an input with a pull resistor; with edge events where the chip has them."""
        self._check(pin)
        try:
            line = self.device.request_input(self.chip.path, pin, pull_up=pull_up, edges=True)
        except OSError as exc:  # a chip without interrupts: the panel polls this pin instead
            _LOGGER.info("GPIO %d: no edge events (%s); the button is polled", pin, exc.strerror or exc)
            line = self.device.request_input(self.chip.path, pin, pull_up=pull_up, edges=False)
        self._lines[pin] = line

    def write(self, pin: int, high: bool) -> None:
        """Drive an output pin."""
        self._lines[pin].set(high)

    def read(self, pin: int) -> bool:
        """Level of an input pin."""
        return self._lines[pin].get()

    def edge_fd(self, pin: int) -> int | None:
        """The descriptor that turns readable when `pin` changes, or None (poll it)."""
        return self._lines[pin].edge_fd()

    def drain_edges(self, pin: int) -> int:
        """Consume the pending edge events of `pin`."""
        return self._lines[pin].drain_edges()

    def close(self) -> None:
        """Release every line (they go back to inputs in the kernel's hands)."""
        lines, self._lines = self._lines, {}
        for line in lines.values():
            line.release()


class _GpiodLine:
    """A line request of the `gpiod` binding (imported lazily by GpiodDevice)."""

    def __init__(self, request: object, offset: int, edges: bool) -> None:
        from gpiod import LineRequest as Request

        assert isinstance(request, Request)
        self._req = request
        self._offset = offset
        self._edges = edges

    def set(self, high: bool) -> None:
        from gpiod.line import Value

        self._req.set_value(self._offset, Value.ACTIVE if high else Value.INACTIVE)

    def get(self) -> bool:
        from gpiod.line import Value

        return self._req.get_value(self._offset) == Value.ACTIVE

    def edge_fd(self) -> int | None:
        return self._req.fd if self._edges else None

    def drain_edges(self) -> int:
        if not self._edges or not self._req.wait_edge_events(0):
            return 0
        return len(self._req.read_edge_events())

    def release(self) -> None:
        self._req.release()


class GpiodDevice:
    """The real character device, through the `gpiod` (libgpiod v2) binding."""

    def __init__(self, dev_dir: Path = DEV_DIR) -> None:
        try:
            import gpiod  # noqa: F401 - imported here: machines without it must still import hal
        except ImportError as exc:
            raise ConfigurationError("gpio backend 'gpiochip' needs the gpiod package (libgpiod v2)") from exc
        self._dev_dir = dev_dir

    def chips(self) -> Sequence[Path]:
        """/dev/gpiochip*, the stable link first."""
        return sorted(self._dev_dir.glob("gpiochip*"), key=lambda p: (not p.is_symlink(), p.name))

    def label(self, chip: Path) -> tuple[str, int]:
        """Label and line count from the chip itself."""
        import gpiod

        if not gpiod.is_gpiochip_device(str(chip)):
            raise OSError(f"{chip} is not a GPIO chip")
        with gpiod.Chip(str(chip)) as handle:
            info = handle.get_info()
            return info.label, info.num_lines

    def request_output(self, chip: Path, offset: int) -> LineRequest:
        """Request an output line, driven low from the start."""
        import gpiod
        from gpiod.line import Direction, Value

        settings = gpiod.LineSettings(direction=Direction.OUTPUT, output_value=Value.INACTIVE)
        request = gpiod.request_lines(str(chip), consumer=CONSUMER, config={offset: settings})
        return _GpiodLine(request, offset, edges=False)

    def request_input(self, chip: Path, offset: int, *, pull_up: bool, edges: bool) -> LineRequest:
        """Request an input line with its bias, and edge events on both edges if asked."""
        import gpiod
        from gpiod.line import Bias, Direction, Edge

        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            bias=Bias.PULL_UP if pull_up else Bias.PULL_DOWN,
            edge_detection=Edge.BOTH if edges else Edge.NONE,
        )
        request = gpiod.request_lines(str(chip), consumer=CONSUMER, config={offset: settings})
        return _GpiodLine(request, offset, edges)
