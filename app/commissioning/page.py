"""The status page for people: built from the status document and the history ring, nothing else.

Works without JavaScript (the page refreshes itself with a meta tag; charts are inline SVG; the LED
blinks with CSS drawn from hal.gpio's PATTERNS). Every field of the document is still listed under
"All fields", so the page never hides what /api/status says.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from app.commissioning.charts import Frame, power_chart, readings_chart, soc_chart
from app.commissioning.history import HISTORY_S, INTERVAL_S, History, Window
from app.commissioning.words import LED_WORDS, duration, local_time, parse_time, problem_in_words, when
from app.identity.qr import payload_of, qr_svg
from hal.gpio import PATTERNS, Colour, LedState

REFRESH_S = 5

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0;padding:.4rem;background:#eef0f3;color:#111;font-size:14px}
main{display:grid;gap:.4rem;grid-template-columns:minmax(0,1fr);max-width:1280px;margin:auto}
@media(min-width:900px){main{grid-template-columns:minmax(0,1fr) minmax(0,1.3fr)}.wide{grid-column:1/-1}
#history{grid-column:2;grid-row:2/span 4}}
section{background:#fff;border-radius:.5rem;padding:.4rem .7rem;box-shadow:0 1px 2px #0002}
h1{font-size:1.05rem;margin:0;display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
h2{font-size:.95rem;margin:.1rem 0 .3rem}
p{margin:.25rem 0}
.badge{padding:.05rem .5rem;border-radius:1rem;color:#fff;font-size:.85rem}
.ok{background:#1a7f37}.degraded{background:#b35900}.fault{background:#c62828}.unknown{background:#555}
.led{display:flex;gap:.5rem;align-items:center;margin:.2rem 0}
.dot{width:1.2rem;height:1.2rem;border-radius:50%;border:2px solid #333;flex:none}
.strip{height:12px;width:7rem;flex:none}.ledname{font-size:.8rem;color:#444}
.todo{color:#333}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .7rem;margin:.2rem 0}
dt{color:#555}dd{margin:0;overflow-wrap:anywhere}
.event{background:#fff6e0;border-left:4px solid #e69500;padding:.2rem .5rem;margin:.2rem 0}
.event b{display:block}
ul{margin:.2rem 0;padding-left:1.1rem}
.chart{margin:0 0 .2rem}
figcaption{font-size:.85rem;font-weight:600;display:flex;justify-content:space-between;flex-wrap:wrap}
.legend{font-weight:400;color:#444;font-size:.75rem}
.k{display:inline-block;width:.8rem;height:.5rem;margin:0 .2rem 0 .5rem}
svg{width:100%;height:auto;display:block}
svg .plot{fill:#fafbfc;stroke:#ccd}svg .grid{stroke:#dde;stroke-width:.5}
svg text{font-size:13px;fill:#555}@media(max-width:600px){svg text{font-size:18px}}
svg .ylab{text-anchor:end}svg .xlab{text-anchor:middle}
svg polyline{fill:none;stroke-width:1.3;stroke-linejoin:round}
.power polyline{stroke:#1565c0}.k.power{background:#1565c0}
.setpoint polyline{stroke:#e65100;stroke-dasharray:4 2;stroke-width:1.6}.k.setpoint{background:#e65100}
.soc polyline{stroke:#2e7d32}.k.soc{background:#2e7d32}
.waiting polyline{stroke:#b35900}.k.waiting{background:#b35900}
.posted rect{fill:#2e7d32}.k.posted{background:#2e7d32}
g.event rect{fill:#ffb30040}.k.event{background:#ffb30060}
g.outage rect{fill:#c6282830}.k.outage{background:#c6282850}
.qr{width:8rem;height:8rem;float:right;margin-left:.5rem}
details{font-size:.85rem}details table{border-collapse:collapse;width:100%}
details th{text-align:left;font-weight:600;padding:.1rem .5rem .1rem 0;width:40%;vertical-align:top}
details td{overflow-wrap:anywhere}
.muted{color:#666;font-size:.8rem}
"""

_LED_CSS = {(True, False, False): "#e53935", (False, True, False): "#43a047", (False, False, True): "#1e88e5"}
_AMBER = "#ffb300"
_WHITE = "#f5f5f5"


def led_css_colour(colour: Colour) -> str:
    """The CSS colour of an LED colour (amber = red + green)."""
    lit = (colour.red, colour.green, colour.blue)
    if all(lit):
        return _WHITE
    if colour.red and colour.green:
        return _AMBER
    return _LED_CSS.get(lit, "#888")


def _colour_name(colour: Colour) -> str:
    if colour.red and colour.green and colour.blue:
        return "white"
    if colour.red and colour.green:
        return "amber"
    names = [name for name in ("red", "green", "blue") if getattr(colour, name)]
    return "+".join(names) or "off"


def led_words(state: LedState) -> str:
    """The LED's pattern in words, from PATTERNS (e.g. "amber, 2 short blinks every 3 s")."""
    pattern = PATTERNS[state]
    colour = _colour_name(pattern.colour)
    lit = sum(end - start for start, end in pattern.on)
    period = pattern.period_s
    if lit / period > 0.9:
        rhythm = f"steady, dark for {period - lit:g} s every {period:g} s"
    elif len(pattern.on) == 1:
        rhythm = f"{lit:g} s on, {period - lit:g} s off"
    else:
        rhythm = f"{len(pattern.on)} short blinks every {period:g} s"
    return f"{colour}, {rhythm}"


def led_drawing(state: LedState) -> str:
    """The LED as it blinks (a CSS animation) and one period of its pattern as a strip, from PATTERNS."""
    pattern = PATTERNS[state]
    on = led_css_colour(pattern.colour)
    frames: list[str] = []
    rects: list[str] = []
    last = 0.0
    for start, end in pattern.on:
        if start > last:
            frames.append(f"{last / pattern.period_s * 100:.2f}%{{background:#222}}")
        frames.append(f"{start / pattern.period_s * 100:.2f}%{{background:{on}}}")
        last = end
        rects.append(
            f'<rect x="{start / pattern.period_s * 100:.2f}" '
            f'width="{(end - start) / pattern.period_s * 100:.2f}" '
            f'height="10" fill="{on}" data-on="{start:g}-{end:g}"/>'
        )
    if last < pattern.period_s:
        frames.append(f"{last / pattern.period_s * 100:.2f}%{{background:#222}}")
    keyframes = f"@keyframes led{{{''.join(frames)}}}"
    anim = f"animation:led {pattern.period_s:g}s step-end infinite;background:{on}"
    return (
        f"<style>{keyframes}.dot{{{anim}}}</style>"
        f'<span class="dot" id="led" data-led="{state.name}" data-period="{pattern.period_s:g}" '
        f'title="LED: {state.name}"></span>'
        f'<svg class="strip" viewBox="0 0 100 10" preserveAspectRatio="none" id="led-strip" '
        f'aria-label="one {pattern.period_s:g}-s period of the LED pattern">'
        '<rect width="100" height="10" fill="#222"/>'
        f"{''.join(rects)}</svg>"
    )


def draw_charts(window: Window, end: float, zone: tzinfo) -> str:
    """The three charts of the 24 h up to `end` (HTML), or a line saying there is no history yet."""
    if not len(window):
        return '<p class="muted">No history yet: the charts fill in as the gateway runs.</p>'
    frame = Frame(end - HISTORY_S, end, zone)
    return power_chart(window, frame) + soc_chart(window, frame) + readings_chart(window, frame)


class ChartCache:
    """The charts of a history ring, drawn again only when it has a new sample (every 30 s, not per view)."""

    def __init__(self, history: History, zone: tzinfo) -> None:
        self.history, self.zone = history, zone
        self._key: tuple[int, float | None] | None = None
        self._html = ""

    def html(self, now: float) -> str:
        """The charts up to the newest sample (up to `now` while the ring is empty)."""
        last = self.history.last_t
        key = (len(self.history), last)
        if key != self._key:
            end = now if last is None else last + INTERVAL_S
            self._html = draw_charts(self.history.window(end - HISTORY_S), end, self.zone)
            self._key = key
        return self._html


def render_page(status: Mapping[str, Any], charts: str, now: float, zone: tzinfo) -> str:
    """The whole page for `status` (the /api/status document) and the `charts` (draw_charts)."""
    at = datetime.fromtimestamp(now, UTC)
    zone_name = at.astimezone(zone).strftime("%Z")
    hint = "" if zone_name == "UTC" else "; hover a time for UTC"
    body = (
        _headline(status)
        + _not_commissioned(_section(status, "not commissioned"))
        + _control(_section(status, "control"), zone, at)
        + f'<section id="history"><h2>The last 24 hours</h2>{charts}'
        f'<p class="muted">Times in {html.escape(zone_name)}{hint}.</p></section>'
        + _inverter(_section(status, "inverter"), zone, at)
        + _site(_section(status, "site"))
        + _server(_section(status, "server"), _section(status, "problems"), zone, at)
        + _telemetry(_section(status, "telemetry"), zone, at)
        + _identity(_section(status, "identity"), at)
        + _all_fields(status)
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}"><link rel="icon" href="data:,">'
        "<title>Wattsmart gateway</title>"
        f"<style>{_CSS}</style></head><body><main>{body}</main></body></html>"
    )


def _section(status: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = status.get(key)
    return value if isinstance(value, Mapping) else {}


def _headline(status: Mapping[str, Any]) -> str:
    state = str(status.get("state", "unknown"))
    try:
        led = LedState[str(status.get("led"))]
    except KeyError:
        led = None
    css = state if state in ("ok", "degraded", "fault") else "unknown"
    if led is None:
        words, todo, drawing = f"State: {state}", "See the fields below.", ""
    else:
        words, todo = LED_WORDS[led]
        name = f'<span class="ledname">LED: {html.escape(led_words(led))}</span>'
        drawing = f'<div class="led">{led_drawing(led)}{name}</div>'
    return (
        f'<section class="wide" id="headline"><h1>Wattsmart gateway <span class="badge {css}" id="state">'
        f"{html.escape(state)}</span></h1>{drawing}"
        f'<p id="headline-words"><b>{html.escape(words)}</b></p>'
        f'<p class="todo" id="todo">{html.escape(todo)}</p>'
        "</section>"
    )


def _dl(rows: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _esc(value: object, missing: str = "—") -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:,.1f}"
    return html.escape(str(value))


def _num(value: object, fmt: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return html.escape(fmt.format(value))


def _event_html(event: Mapping[str, Any], zone: tzinfo, now: datetime) -> str:
    start, end = parse_time(event.get("start")), parse_time(event.get("end"))
    name = event.get("description") or f"event {event.get('mRID')}"
    span = ""
    if start is not None and end is not None:
        length = duration((end - start).total_seconds())
        span = f"{local_time(start, zone, now)} → {local_time(end, zone, now)} ({length})"
        if event.get("phase") == "active":
            span += f", ends in {duration((end - now).total_seconds())}"
        else:
            span += f", starts in {duration((start - now).total_seconds())}"
    return (
        f'<div class="event" data-mrid="{_esc(event.get("mRID"))}" data-phase="{_esc(event.get("phase"))}">'
        f"<b>{_esc(name)}: {_esc(event.get('action'), 'no action given')}</b>"
        f'{span}<br><span class="muted">program {_esc(event.get("program"))} · '
        f"mRID {_esc(event.get('mRID'))}</span></div>"
    )


def _control(control: Mapping[str, Any], zone: tzinfo, now: datetime) -> str:
    events = [e for e in control.get("events") or () if isinstance(e, Mapping)]
    active = [e for e in events if e.get("phase") == "active"]
    scheduled = [e for e in events if e.get("phase") != "active"]
    if active:
        in_force = "".join(_event_html(e, zone, now) for e in active)
    elif control.get("in force"):
        in_force = f"<p>{_esc(control.get('in force'))}</p>"
    else:
        in_force = "<p>No utility event in force.</p>"
    setpoint = control.get("setpoint W")
    mode = (
        f"the utility's setpoint, {setpoint:,.0f} W"
        if isinstance(setpoint, int | float)
        else "its own mode (no utility setpoint)"
    )
    rows = [("battery follows", mode)]
    if control.get("default control"):
        rows.append(("between events", _esc(control.get("default control"))))
    rows.append(("next change", when(control.get("next change"), zone, now, "none scheduled")))
    upcoming = "".join(_event_html(e, zone, now) for e in scheduled) or '<p class="muted">None scheduled.</p>'
    return (
        '<section id="control"><h2>Utility control in force</h2>'
        f'<div id="in-force">{in_force}</div>{_dl(rows)}'
        f'<h2>Scheduled</h2><div id="scheduled">{upcoming}</div></section>'
    )


def _inverter(inv: Mapping[str, Any], zone: tzinfo, now: datetime) -> str:
    w = inv.get("power W")
    power = "—"
    if isinstance(w, int | float):
        power = f"{abs(w):,.0f} W " + ("discharging" if w > 0 else "charging" if w < 0 else "idle")
    rows = [
        ("answering", "yes" if inv.get("reachable") else f"no: {_esc(inv.get('problem'))}"),
        ("power", power),
        ("state of charge", _num(inv.get("state of charge %"), "{:.0f} %")),
        ("grid frequency", _num(inv.get("frequency Hz"), "{:.2f} Hz")),
        ("read", when(inv.get("read at"), zone, now)),
        ("may discharge", _num(inv.get("max discharge W"), "{:,.0f} W")),
        ("may charge", _num(inv.get("max charge W"), "{:,.0f} W")),
        ("nameplate", _esc(inv.get("nameplate W"))),
    ]
    for key in ("data not trusted", "questionable"):
        value = inv.get(key)
        if value:
            items = value.values() if isinstance(value, Mapping) else value
            rows.append((key, "<ul>" + "".join(f"<li>{_esc(v)}</li>" for v in items) + "</ul>"))
    return f'<section id="inverter-card"><h2>Battery inverter</h2>{_dl(rows)}</section>'


def _site(site: Mapping[str, Any]) -> str:
    """Each inverter of a site and the site meter (nothing with one inverter and no meter)."""
    if not site:
        return ""
    rows = []
    members = site.get("inverters")
    for member in members if isinstance(members, list) else []:
        if not isinstance(member, Mapping):
            continue
        answer = "answering" if member.get("reachable") else f"not answering: {_esc(member.get('problem'))}"
        power = _num(member.get("power W"), "{:+,.0f} W")
        soc = _num(member.get("state of charge %"), "{:.0f} %")
        share = _num(member.get("share W"), "{:+,.0f} W")
        rows.append((str(member.get("name", "inverter")), f"{power}, SoC {soc}, share {share}, {answer}"))
    meter = site.get("meter")
    if isinstance(meter, Mapping):
        answer = "answering" if meter.get("reachable") else f"not answering: {_esc(meter.get('problem'))}"
        rows.append(("site meter", f"{_num(meter.get('site export W'), '{:+,.0f} W')} export, {answer}"))
    elif meter:
        rows.append(("site meter", _esc(meter)))
    return f'<section id="site-card"><h2>Site</h2>{_dl(rows)}</section>'


def _server(server: Mapping[str, Any], problems: Mapping[str, Any], zone: tzinfo, now: datetime) -> str:
    registered = server.get("registered")
    rows = [
        ("connected", "yes" if server.get("connected") else "no"),
        ("registered", "yes" if registered else "not yet" if registered is False else "unknown"),
        ("last contact", when(server.get("last read"), zone, now)),
        ("programs", _esc(server.get("programs"))),
        ("address", _esc(server.get("url"))),
    ]
    if server.get("clock offset s"):
        rows.append(("server clock", f"{_esc(server.get('clock offset s'))} s from ours"))
    bounded = server.get("bounded inputs")
    if bounded:  # server values the gateway capped or distrusts (each also logged once as a warning)
        rows.append(("bounded inputs", "<ul>" + "".join(f"<li>{_esc(v)}</li>" for v in bounded) + "</ul>"))
    current = problems.get("current") or []
    recent = problems.get("recent") or []
    listed = "".join(
        f'<li title="{html.escape(str(p.get("kind")))}">{html.escape(problem_in_words(p))}</li>'
        for p in current
        if isinstance(p, Mapping)
    )
    out = f'<section id="server-card"><h2>Utility server</h2>{_dl(rows)}<h2>Problems</h2>'
    out += f"<ul>{listed}</ul>" if listed else "<p>None.</p>"
    if recent:
        out += (
            '<p class="muted">Recently: '
            + html.escape("; ".join(problem_in_words(p) for p in recent if isinstance(p, Mapping)))
            + "</p>"
        )
    return out + "</section>"


def _telemetry(tel: Mapping[str, Any], zone: tzinfo, now: datetime) -> str:
    if "state" in tel and len(tel) == 1:
        return f'<section id="telemetry-card"><h2>Readings</h2><p>{_esc(tel["state"])}</p></section>'
    posts = {k.removeprefix("last post "): v for k, v in tel.items() if k.startswith("last post ")}
    waits = {k.removeprefix("waiting "): v for k, v in tel.items() if k.startswith("waiting ")}
    rows = [("last sample", when(tel.get("last sample"), zone, now))]
    rows += [(f"last delivered: {k}", when(v, zone, now)) for k, v in posts.items()]
    total = sum(v for v in waits.values() if isinstance(v, int))
    rows.append(("waiting to send", f"{total} readings" if total else "none"))
    rows.append(("dropped", _esc(tel.get("dropped"))))
    return f'<section id="telemetry-card"><h2>Readings</h2>{_dl(rows)}</section>'


def _not_commissioned(section: Mapping[str, Any]) -> str:
    """What the box still needs, each with its fix; this box's LFDI/SFDI and QR code once it has them."""
    if not section:
        return ""
    lfdi, sfdi = section.get("LFDI"), section.get("SFDI")
    qr = qr_svg(payload_of(sfdi, str(lfdi))) if isinstance(sfdi, int) and lfdi else ""
    rows = [(str(k), _esc(v)) for k, v in section.items()]
    return f'<section class="wide" id="not-commissioned"><h2>Not commissioned</h2>{qr}{_dl(rows)}</section>'


def _identity(ident: Mapping[str, Any], now: datetime) -> str:
    lfdi, sfdi = ident.get("LFDI"), ident.get("SFDI")
    qr = qr_svg(payload_of(sfdi, str(lfdi))) if lfdi and sfdi is not None else ""
    expires = parse_time(ident.get("expires"))
    rows = [("LFDI", _esc(lfdi)), ("SFDI", _esc(sfdi))]
    if expires is not None:
        left = (expires - now).total_seconds()
        rows.append(
            (
                "certificate",
                f"expires {expires:%Y-%m-%d} ({'in ' + duration(left) if left > 0 else 'EXPIRED'})",
            )
        )
    for key in ("problem", "certificate", "error"):
        if ident.get(key):
            rows.append((key, _esc(ident.get(key))))
    return f'<section class="wide" id="identity-card"><h2>This box</h2>{qr}{_dl(rows)}</section>'


def _all_fields(status: Mapping[str, Any]) -> str:
    parts = []
    for title, value in status.items():
        if not isinstance(value, Mapping):
            continue
        rows = "".join(
            f'<tr><th>{html.escape(str(k))}</th><td id="{html.escape(f"{title}.{k}")}">'
            f"{html.escape(_show(v))}</td></tr>"
            for k, v in value.items()
        )
        parts.append(f"<h2>{html.escape(title)}</h2><table>{rows}</table>")
    return (
        '<section class="wide"><details><summary>All fields (as /api/status)</summary>'
        f"{''.join(parts)}</details></section>"
    )


def _show(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | tuple):
        return "; ".join(_show(v) for v in value) or "—"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_show(v)}" for k, v in value.items()) or "—"
    return str(value)
