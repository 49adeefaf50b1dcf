"""The status page's last day in memory: a bounded ring of samples taken from the status document.

Nothing here touches flash: the ring is a few preallocated arrays (about 110 kB for 24 h of 30-s
samples), lost on restart by design (the outbox still holds the readings themselves). Each sample is
read from the same status document `/api/status` serves, so a chart never shows what the JSON cannot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_LOGGER = logging.getLogger(__name__)

#: the history the page charts and /api/history serves
HISTORY_S = 24 * 3600
#: the sampling interval (the telemetry's cadence)
INTERVAL_S = 30.0
#: 24 h of 30-s samples, plus one so a full day still has both ends
CAPACITY = int(HISTORY_S / INTERVAL_S) + 1

_NONE = math.nan
POSTED, CONNECTED, EVENT = 1, 2, 4


@dataclass(frozen=True, slots=True)
class Sample:
    """One moment: battery power and the utility's setpoint (W), SoC, and how readings fared."""

    t: float
    """Unix time, s."""
    power_w: float | None = None
    setpoint_w: float | None = None
    """The setpoint the gateway holds the battery to (None: the battery follows its own mode)."""
    soc_pct: float | None = None
    waiting: int | None = None
    """Readings waiting in the outbox for the server."""
    posted: bool = False
    """A reading got through to the server since the previous sample."""
    connected: bool = False
    event: bool = False
    """A utility event (not the default control) was in force."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.t) or self.t < 0:
            raise ValueError(f"sample time {self.t!r} is not a Unix time")
        if self.waiting is not None and self.waiting < 0:
            raise ValueError(f"waiting readings {self.waiting!r} < 0")


@dataclass(frozen=True, slots=True)
class Window:
    """Samples as compact columns (8 bytes a value, NaN = none): what the charts draw from."""

    t: array[float]
    power: array[float]
    setpoint: array[float]
    soc: array[float]
    waiting: array[float]
    flags: array[int]

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> Window:
        """The columns of `samples` (in time order)."""
        window = cls(array("d"), array("d"), array("d"), array("d"), array("d"), array("B"))
        for s in samples:
            window.t.append(s.t)
            window.power.append(_num(s.power_w))
            window.setpoint.append(_num(s.setpoint_w))
            window.soc.append(_num(s.soc_pct))
            window.waiting.append(_num(s.waiting))
            window.flags.append(_flags(s))
        return window

    def holds(self, flag: int) -> array[int]:
        """1 where `flag` (POSTED, CONNECTED, EVENT) is set, else 0."""
        return array("B", (1 if f & flag else 0 for f in self.flags))


class History:
    """A ring of at most `capacity` samples in time order; the oldest goes when it is full."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 2:
            raise ValueError(f"history capacity {capacity} < 2")
        self.capacity = capacity
        self._t = array("d", [0.0]) * capacity
        self._power = array("d", [_NONE]) * capacity
        self._setpoint = array("d", [_NONE]) * capacity
        self._soc = array("d", [_NONE]) * capacity
        self._waiting = array("l", [-1]) * capacity
        self._flags = array("B", [0]) * capacity
        self._next = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        """The bytes the ring's arrays hold (fixed from the start: it never grows)."""
        columns = (self._t, self._power, self._setpoint, self._soc, self._waiting, self._flags)
        return sum(len(c) * c.itemsize for c in columns)

    @property
    def last_t(self) -> float | None:
        """The newest sample's time, or None when empty."""
        return self._t[(self._next - 1) % self.capacity] if self._len else None

    def record(self, sample: Sample) -> bool:
        """Add `sample`; one older than the newest is dropped with a log line (returns False)."""
        last = self.last_t
        if last is not None and sample.t < last:
            _LOGGER.warning(
                "history: sample at %.0f is older than the newest (%.0f); dropped", sample.t, last
            )
            return False
        i = self._next
        self._t[i] = sample.t
        self._power[i] = _num(sample.power_w)
        self._setpoint[i] = _num(sample.setpoint_w)
        self._soc[i] = _num(sample.soc_pct)
        self._waiting[i] = -1 if sample.waiting is None else sample.waiting
        self._flags[i] = _flags(sample)
        self._next = (i + 1) % self.capacity
        self._len = min(self._len + 1, self.capacity)
        return True

    def since(self, t0: float) -> Iterator[Sample]:
        """The samples at or after `t0`, oldest first."""
        start = (self._next - self._len) % self.capacity
        for k in range(self._len):
            i = (start + k) % self.capacity
            if self._t[i] >= t0:
                flags = self._flags[i]
                yield Sample(
                    self._t[i],
                    _opt(self._power[i]),
                    _opt(self._setpoint[i]),
                    _opt(self._soc[i]),
                    None if self._waiting[i] < 0 else self._waiting[i],
                    bool(flags & POSTED),
                    bool(flags & CONNECTED),
                    bool(flags & EVENT),
                )

    def window(self, t0: float) -> Window:
        """The samples at or after `t0` as columns (no per-sample objects)."""
        rows = self._rows(t0)
        return Window(
            array("d", (self._t[i] for i in rows)),
            array("d", (self._power[i] for i in rows)),
            array("d", (self._setpoint[i] for i in rows)),
            array("d", (self._soc[i] for i in rows)),
            array("d", (_NONE if self._waiting[i] < 0 else float(self._waiting[i]) for i in rows)),
            array("B", (self._flags[i] for i in rows)),
        )

    def _rows(self, t0: float) -> list[int]:
        """Ring indexes of the samples at or after `t0`, oldest first."""
        start = (self._next - self._len) % self.capacity
        return [i for i in ((start + k) % self.capacity for k in range(self._len)) if self._t[i] >= t0]

    def to_json(self, now: float, hours: float = 24.0) -> dict[str, Any]:
        """The last `hours` (0 < hours ≤ 24) as columns: `/api/history`'s body, at most `capacity` rows."""
        data: dict[str, Any] = json.loads(self.to_json_text(now, hours))
        return data

    def to_json_text(self, now: float, hours: float = 24.0) -> str:
        """`to_json` as JSON text, built column by column from the ring (no per-sample objects)."""
        hours = min(max(hours, 0.0), HISTORY_S / 3600)
        rows = self._rows(now - hours * 3600)

        def floats(col: array[float], digits: int) -> str:
            return ",".join("null" if math.isnan(v) else _short(v, digits) for v in (col[i] for i in rows))

        def flags(bit: int) -> str:
            return ",".join("true" if self._flags[i] & bit else "false" for i in rows)

        columns = (
            ("t", floats(self._t, 1)),
            ("power W", floats(self._power, 1)),
            ("setpoint W", floats(self._setpoint, 1)),
            ("state of charge %", floats(self._soc, 1)),
            ("waiting", ",".join("null" if self._waiting[i] < 0 else str(self._waiting[i]) for i in rows)),
            ("posted", flags(POSTED)),
            ("connected", flags(CONNECTED)),
            ("event", flags(EVENT)),
        )
        head = f'{{"hours": {json.dumps(hours)}, "interval s": {json.dumps(INTERVAL_S)}, "count": {len(rows)}'
        return head + "".join(f', "{name}": [{text}]' for name, text in columns) + "}"


def _short(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _flags(sample: Sample) -> int:
    return (
        (POSTED if sample.posted else 0)
        | (CONNECTED if sample.connected else 0)
        | (EVENT if sample.event else 0)
    )


def _num(value: float | None) -> float:
    return _NONE if value is None else float(value)


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else value


class Sampler:
    """Turns status documents into samples; knows the previous one to tell whether readings got through."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._last_posts: tuple[object, ...] | None = None

    def observe(self, status: Mapping[str, Any], now: float) -> Sample:
        """Record one sample read from `status` (the /api/status document) at `now` (Unix time)."""
        inverter = _section(status, "inverter")
        control = _section(status, "control")
        telemetry = _section(status, "telemetry")
        server = _section(status, "server")
        posts = tuple(v for k, v in sorted(telemetry.items()) if k.startswith("last post"))
        waits = [v for k, v in telemetry.items() if k.startswith("waiting") and isinstance(v, int)]
        posted = self._last_posts is not None and posts != self._last_posts and any(posts)
        self._last_posts = posts
        sample = Sample(
            now,
            power_w=_float(inverter.get("power W")),
            setpoint_w=_float(control.get("setpoint W")),
            soc_pct=_float(inverter.get("state of charge %")),
            waiting=sum(waits) if waits else None,
            posted=posted,
            connected=server.get("connected") is True,
            event=any(
                e.get("phase") == "active" for e in control.get("events") or () if isinstance(e, Mapping)
            ),
        )
        self.history.record(sample)
        return sample

    async def run(
        self,
        snapshot: Callable[[], Mapping[str, Any]],
        interval_s: float = INTERVAL_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Sample `snapshot()` every `interval_s` until cancelled; a failing snapshot is logged, not fatal."""
        failing = False
        while True:
            try:
                self.observe(snapshot(), wall_clock())
                failing = False
            except Exception as exc:
                if not failing:
                    _LOGGER.error("history: cannot sample the status: %s", exc)
                failing = True
            await asyncio.sleep(interval_s)


def _section(status: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = status.get(key)
    return value if isinstance(value, Mapping) else {}


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
