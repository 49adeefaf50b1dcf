"""A GPIO character device in memory: chips with labels, line ownership, bias and edge events.

What `GpiochipGpio` sees of the kernel, without a kernel: a line requested twice is busy (EBUSY),
a chip the sandbox does not allow cannot be opened (EPERM), an input rests at its pull level,
and a level change on an edge-detecting input makes the request's descriptor readable (a real
pipe, so asyncio waits on it exactly as on a gpiochip line request).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FakeLine:
    """One line of a fake chip."""

    output: bool | None = None  # None: not requested; True: output; False: input
    level: bool = False
    pull_up: bool = False
    writes: list[bool] = field(default_factory=list)
    edges: tuple[int, int] | None = None  # the pipe (read end, write end) while edges are requested


@dataclass
class FakeChip:
    """A fake chip: a label, its lines, and whether the sandbox lets us open it."""

    label: str
    num_lines: int = 54
    allowed: bool = True
    irq: bool = True  # False: requesting edge detection fails, as on a chip without interrupts
    lines: dict[int, FakeLine] = field(default_factory=dict)

    def line(self, offset: int) -> FakeLine:
        """The line at `offset` (created on first use)."""
        return self.lines.setdefault(offset, FakeLine())


class _FakeRequest:
    def __init__(self, chip: FakeChip, offset: int) -> None:
        self._chip = chip
        self._offset = offset
        self._line = chip.line(offset)
        self.released = False

    def set(self, high: bool) -> None:
        if self.released or not self._line.output:
            raise OSError(errno.EPERM, f"line {self._offset} is not a requested output")
        self._line.level = high
        self._line.writes.append(high)

    def get(self) -> bool:
        if self.released:
            raise OSError(errno.EBADF, "request released")
        return self._line.level

    def edge_fd(self) -> int | None:
        return self._line.edges[0] if self._line.edges else None

    def drain_edges(self) -> int:
        if not self._line.edges:
            return 0
        os.set_blocking(self._line.edges[0], False)
        try:
            return len(os.read(self._line.edges[0], 4096))
        except BlockingIOError:
            return 0

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self._line.edges:
            for fd in self._line.edges:
                os.close(fd)
        self._line.output, self._line.edges = None, None
        self._chip.lines[self._offset] = FakeLine(level=self._line.level)


class FakeCharDevice:
    """Chips by path; tests press the button with `set_input()` and read LED writes from `lines`."""

    def __init__(self, chips: dict[str, FakeChip] | None = None) -> None:
        self.by_path: dict[Path, FakeChip] = {Path(p): c for p, c in (chips or {}).items()}

    def chip(self, label: str) -> FakeChip:
        """The chip with `label`."""
        return next(c for c in self.by_path.values() if c.label == label)

    def chips(self) -> Sequence[Path]:
        """Every fake chip's path."""
        return sorted(self.by_path)

    def label(self, chip: Path) -> tuple[str, int]:
        """Label and line count; EPERM for a chip the sandbox does not allow."""
        fake = self._open(chip)
        return fake.label, fake.num_lines

    def _open(self, chip: Path) -> FakeChip:
        fake = self.by_path.get(chip)
        if fake is None:
            raise OSError(errno.ENOENT, "No such file or directory")
        if not fake.allowed:
            raise OSError(errno.EPERM, "Operation not permitted")
        return fake

    def _claim(self, chip: Path, offset: int) -> tuple[FakeChip, FakeLine]:
        fake = self._open(chip)
        if not 0 <= offset < fake.num_lines:
            raise OSError(errno.EINVAL, f"no line {offset}")
        line = fake.line(offset)
        if line.output is not None:
            raise OSError(errno.EBUSY, "Device or resource busy")
        return fake, line

    def request_output(self, chip: Path, offset: int) -> _FakeRequest:
        """Request an output, driven low."""
        fake, line = self._claim(chip, offset)
        line.output, line.level = True, False
        return _FakeRequest(fake, offset)

    def request_input(self, chip: Path, offset: int, *, pull_up: bool, edges: bool) -> _FakeRequest:
        """Request an input resting at its pull level, with an edge pipe if asked."""
        fake, line = self._claim(chip, offset)
        if edges and not fake.irq:
            raise OSError(errno.ENXIO, "No such device or address")
        line.output, line.pull_up, line.level = False, pull_up, pull_up
        line.edges = os.pipe() if edges else None
        return _FakeRequest(fake, offset)

    def set_input(self, label: str, offset: int, level: bool) -> None:
        """Drive an input from outside (a finger on the button); an edge event if it changed."""
        line = self.chip(label).line(offset)
        if line.output is not False:
            raise ValueError(f"line {offset} is not a requested input")
        if line.level != level and line.edges:
            os.write(line.edges[1], b"r" if level else b"f")
        line.level = level
