"""The status page's words: what each LED state means and what to do, problems, times and durations."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from app.health import Kind
from hal.gpio import LedState

#: per LED state: the headline and what to do next (the installer's card in README.md, in words)
LED_WORDS: dict[LedState, tuple[str, str]] = {
    LedState.FAULT: (
        "Fault: a part keeps crashing or a certificate has expired",
        "Run `wattsmart-gateway check` on the box and read the problems below.",
    ),
    LedState.UPDATING: ("Updating the software", "Wait, and do not unplug the box."),
    LedState.NOT_COMMISSIONED: (
        "Not commissioned: the battery is not driven",
        "Fix each item under 'Not commissioned' with the command given there; the gateway takes it up.",
    ),
    LedState.BOOTING: ("Starting", "Wait a minute: the gateway is reaching the utility's server."),
    LedState.NO_NETWORK: (
        "No network",
        "Check the network cable or Wi-Fi, and that the router gives an address.",
    ),
    LedState.NO_SERVER: (
        "The utility's server cannot be reached",
        "Check the site's internet access; if it works, check server.dcap_url with the utility.",
    ),
    LedState.NOT_REGISTERED: (
        "Not registered with the utility",
        "Give the utility this box's LFDI/SFDI (the QR code below) and wait for them to register it.",
    ),
    LedState.NO_INVERTER: (
        "The battery inverter does not answer",
        "Check the RS-485 wiring (A/B), the port, the baud rate and the unit id.",
    ),
    LedState.COMMISSIONING: (
        "Commissioning mode: this page is open to the local network",
        "Check the sections below; the page closes to the network by itself (status_page.commissioning_s).",
    ),
    LedState.ATTENTION: (
        "Working, but something needs attention",
        "Read the problems below: a certificate to renew, a degraded part or inverter data not trusted.",
    ),
    LedState.OK: ("All well", "Nothing to do."),
}

#: each kind of health problem in words (the problem's own text follows, for whoever needs detail)
KIND_WORDS: dict[str, str] = {
    Kind.NETWORK: "this box has no network (no route, or names do not resolve)",
    Kind.SERVER: "the server does not answer, or answers what cannot be used",
    Kind.SERVER_REFUSED: "the server refused what the gateway sent",
    Kind.NOT_REGISTERED: "the server does not accept this box (not registered, or a wrong certificate)",
    Kind.CERTIFICATE: "the server refused the secure connection (certificate or TLS)",
    Kind.INVERTER: "the battery inverter does not answer, or its data cannot be trusted",
    Kind.STORAGE: "the state storage cannot be written or read",
    Kind.CONFIGURATION: "a setting must be fixed (the problem says which)",
    Kind.SOFTWARE: "a part of the gateway failed and is restarted",
}


def problem_in_words(problem: Mapping[str, Any]) -> str:
    """One problem of the status document ({"part", "kind", "problem"}) in words, from its kind."""
    part = str(problem.get("part", ""))
    text = problem.get("problem")
    if text is None:
        return f"{part}: recovered"
    words = KIND_WORDS.get(str(problem.get("kind")))
    return f"{part}: {words} ({text})" if words else f"{part}: {text}"


def parse_time(value: object) -> datetime | None:
    """An ISO time (or "YYYY-MM-DD HH:MM UTC") from the status document as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.removesuffix(" UTC")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """A duration for people: "45 s", "12 min", "3 h 5 min", "2 days 4 h"."""
    s = abs(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} day{'s' if d != 1 else ''}" + (f" {h} h" if h and d < 7 else "")


def relative(when: datetime, now: datetime) -> str:
    """ "5 min ago", "in 2 h", or "now"."""
    delta = (when - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"


def local_time(when: datetime, zone: tzinfo, now: datetime) -> str:
    """A <time> element: local wall time (with the day when not today), UTC in its title."""
    local = when.astimezone(zone)
    today = now.astimezone(zone).date()
    shown = f"{local:%H:%M}" if local.date() == today else f"{local:%a %d %b %H:%M}"
    utc = when.astimezone(UTC)
    return (
        f'<time datetime="{utc.isoformat(timespec="seconds")}" title="{utc:%Y-%m-%d %H:%M:%S} UTC">'
        f"{html.escape(shown)}</time>"
    )


def when(value: object, zone: tzinfo, now: datetime, missing: str = "never") -> str:
    """A status-document time as local time and how long ago / from now (HTML), or `missing`."""
    parsed = parse_time(value)
    if parsed is None:
        return html.escape(missing)
    return f"{local_time(parsed, zone, now)} ({relative(parsed, now)})"
