"""The last day as inline SVG, drawn on the server: no JavaScript, no library, no fonts to fetch.

Each chart is a <figure> whose series carry `data-series` and `data-n` (samples drawn) and whose
shaded spans carry `data-start`/`data-end` (Unix time), so a test can check what was drawn.
"""

from __future__ import annotations

import html
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from app.commissioning.history import CONNECTED, EVENT, INTERVAL_S, POSTED, Window

#: a line keeps at most two points per column (about 2 px wide): the page stays small at 24 h
COLUMNS = 300
#: a gap longer than this many intervals between samples breaks a line (the gateway was not running)
GAP_INTERVALS = 2.5

_W, _H = 600.0, 120.0
_LEFT, _RIGHT, _TOP, _BOTTOM = 56.0, 6.0, 13.0, 18.0


@dataclass(frozen=True, slots=True)
class Frame:
    """The time window drawn and the zone its hour marks are in."""

    t0: float
    t1: float
    zone: tzinfo

    def __post_init__(self) -> None:
        if not self.t1 > self.t0:
            raise ValueError(f"chart window {self.t0!r}..{self.t1!r} is empty")

    def x(self, t: float) -> float:
        """The x coordinate of Unix time `t`."""
        t = min(max(t, self.t0), self.t1)
        return _LEFT + (t - self.t0) / (self.t1 - self.t0) * (_W - _LEFT - _RIGHT)


def _y(v: float, lo: float, hi: float) -> float:
    v = min(max(v, lo), hi)
    return _TOP + (hi - v) / (hi - lo) * (_H - _TOP - _BOTTOM)


def _segments(w: Window, values: array[float]) -> list[range]:
    """Index runs of consecutive samples with a value, broken at a missing value or a gap in time."""
    out: list[range] = []
    start: int | None = None
    for i in range(len(w)):
        gap = start is not None and w.t[i] - w.t[i - 1] > GAP_INTERVALS * INTERVAL_S
        if start is not None and (math.isnan(values[i]) or gap):
            out.append(range(start, i))
            start = None
        if start is None and not math.isnan(values[i]):
            start = i
    if start is not None:
        out.append(range(start, len(w)))
    return out


def spans(w: Window, holds: array[int]) -> list[tuple[float, float]]:
    """The time spans during which `holds` is 1 (a sample holds until the next, or one interval)."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    n = len(w)
    for i in range(n):
        t = w.t[i]
        nxt = w.t[i + 1] if i + 1 < n else t + INTERVAL_S
        end = min(nxt, t + GAP_INTERVALS * INTERVAL_S)
        if holds[i]:
            if start is None:
                start = t
            if nxt != end:  # a gap: the span ends with this sample
                out.append((start, end))
                start = None
        elif start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, w.t[n - 1] + INTERVAL_S))
    return out


def _thin(seg: range, values: array[float], step: bool) -> list[int]:
    """Fewer points, same picture: a step line keeps its changes; a line keeps each column's min and max."""
    if step:
        return [i for i in seg if i == seg.start or values[i] != values[i - 1]]
    if len(seg) <= 2 * COLUMNS:
        return list(seg)
    size = -(-len(seg) // COLUMNS)
    out: list[int] = []
    for b in range(seg.start, seg.stop, size):
        bucket = range(b, min(b + size, seg.stop))
        lo = min(bucket, key=values.__getitem__)
        hi = max(bucket, key=values.__getitem__)
        out.extend(sorted({lo, hi}))
    return out


def _polyline(
    frame: Frame, w: Window, segments: list[range], values: array[float], lo: float, hi: float, step: bool
) -> str:
    parts = []
    for seg in segments:
        pts: list[str] = []
        last_t = w.t[seg.stop - 1] + INTERVAL_S
        kept = _thin(seg, values, step)
        for k, i in enumerate(kept):
            y = _y(values[i], lo, hi)
            pts.append(f"{frame.x(w.t[i]):.1f},{y:.1f}")
            if step:
                nxt = w.t[kept[k + 1]] if k + 1 < len(kept) else last_t
                pts.append(f"{frame.x(nxt):.1f},{y:.1f}")
        parts.append(f'<polyline points="{" ".join(pts)}"/>')
    return "".join(parts)


def _series(
    frame: Frame,
    name: str,
    w: Window,
    values: array[float],
    lo: float,
    hi: float,
    css: str,
    step: bool = False,
) -> str:
    segments = _segments(w, values)
    n = sum(len(s) for s in segments)
    lines = _polyline(frame, w, segments, values, lo, hi, step)
    return f'<g class="{css}" data-series="{name}" data-n="{n}">{lines}</g>'


def _finite_max(*columns: array[float]) -> float:
    return max((v for c in columns for v in c if not math.isnan(v)), key=abs, default=0.0)


def _shade(frame: Frame, name: str, found: list[tuple[float, float]], css: str) -> str:
    rects = "".join(
        f'<rect x="{frame.x(a):.1f}" y="{_TOP}" width="{max(frame.x(b) - frame.x(a), 1.0):.1f}" '
        f'height="{_H - _TOP - _BOTTOM}" data-start="{a:.0f}" data-end="{b:.0f}"/>'
        for a, b in found
    )
    return f'<g class="{css}" data-shade="{name}">{rects}</g>'


def _axes(frame: Frame, lo: float, hi: float, labels: Sequence[tuple[float, str]]) -> str:
    out = [
        f'<rect class="plot" x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" '
        f'height="{_H - _TOP - _BOTTOM}"/>'
    ]
    for v, text in labels:
        y = _y(v, lo, hi)
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="ylab" x="{_LEFT - 3}" y="{y + 3:.1f}">{html.escape(text)}</text>')
    for t, text in _hour_marks(frame):
        x = frame.x(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}"/>')
        out.append(f'<text class="xlab" x="{x:.1f}" y="{_H - 4}">{text}</text>')
    return "".join(out)


def _hour_marks(frame: Frame) -> list[tuple[float, str]]:
    """Local-time marks every 6 h (every hour for short windows)."""
    every = 6 if frame.t1 - frame.t0 > 6 * 3600 else 1
    first = (
        datetime.fromtimestamp(frame.t0, UTC)
        .astimezone(frame.zone)
        .replace(minute=0, second=0, microsecond=0)
    )
    out = []
    t = first + timedelta(hours=1)
    while t.timestamp() <= frame.t1:
        local = t.astimezone(frame.zone)
        if local.hour % every == 0:
            out.append((t.timestamp(), f"{local:%H:%M}"))
        t += timedelta(hours=1)
    return out


def _figure(ident: str, title: str, legend: str, body: str) -> str:
    return (
        f'<figure class="chart" id="{ident}"><figcaption>{title}'
        f'<span class="legend">{legend}</span></figcaption>'
        f'<svg viewBox="0 0 {_W:.0f} {_H:.0f}" role="img" aria-label="{html.escape(title)}">'
        f"{body}</svg></figure>"
    )


def _watts_label(w: float) -> str:
    return f"{w / 1000:g} kW" if abs(w) >= 1000 else f"{w:g} W"


def power_chart(w: Window, frame: Frame) -> str:
    """The battery's power against the utility's setpoint, utility events shaded."""
    top = max(1000.0, abs(_finite_max(w.power, w.setpoint))) * 1.1
    top = float(-(-top // 1000) * 1000)  # whole kW, with headroom
    body = _axes(frame, -top, top, [(top, _watts_label(top)), (0, "0"), (-top, "−" + _watts_label(top))])
    body += _shade(frame, "event", spans(w, w.holds(EVENT)), "event")
    body += _series(frame, "setpoint", w, w.setpoint, -top, top, "setpoint", step=True)
    body += _series(frame, "power", w, w.power, -top, top, "power")
    legend = '<i class="k power"></i>battery <i class="k setpoint"></i>utility setpoint '
    legend += '<i class="k event"></i>event'
    return _figure("chart-power", "Battery power (+ discharge)", legend, body)


def soc_chart(w: Window, frame: Frame) -> str:
    """The state of charge, 0-100 %, events shaded."""
    body = _axes(frame, 0, 100, [(100, "100 %"), (50, "50 %"), (0, "0 %")])
    body += _shade(frame, "event", spans(w, w.holds(EVENT)), "event")
    body += _series(frame, "soc", w, w.soc, 0, 100, "soc")
    return _figure(
        "chart-soc", "State of charge", '<i class="k soc"></i>SoC <i class="k event"></i>event', body
    )


def readings_chart(w: Window, frame: Frame) -> str:
    """Readings waiting for the server (outages shaded) and the moments readings got through."""
    top = max(10.0, _finite_max(w.waiting))
    body = _axes(frame, 0, top, [(top, f"{top:g}"), (0, "0")])
    connected = w.holds(CONNECTED)
    body += _shade(frame, "outage", spans(w, array("B", (1 - c for c in connected))), "outage")
    body += _series(frame, "waiting", w, w.waiting, 0, top, "waiting")
    posted = w.holds(POSTED)
    bars = "".join(
        f'<rect x="{frame.x(a):.1f}" y="{_H - _BOTTOM - 4}" width="{max(frame.x(b) - frame.x(a), 0.5):.1f}" '
        f'height="4" data-start="{a:.0f}" data-end="{b:.0f}"/>'
        for a, b in spans(w, posted)
    )
    body += f'<g class="posted" data-shade="posted" data-n="{sum(posted)}">{bars}</g>'
    legend = (
        '<i class="k waiting"></i>waiting <i class="k posted"></i>delivered '
        '<i class="k outage"></i>server not reached'
    )
    return _figure("chart-readings", "Readings to the utility", legend, body)
