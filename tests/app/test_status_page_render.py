"""The status page's words, LED drawing, control events and charts, rendered from literal documents."""

from __future__ import annotations

import math
import random
import re
import zoneinfo
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.commissioning.charts import Frame, power_chart, readings_chart, soc_chart, spans
from app.commissioning.events import describe_action, describe_default, describe_events
from app.commissioning.history import History, Sample, Window
from app.commissioning.page import ChartCache, draw_charts, led_drawing, led_words, render_page
from app.commissioning.words import (
    KIND_WORDS,
    LED_WORDS,
    duration,
    local_time,
    parse_time,
    problem_in_words,
    relative,
)
from app.commissioning.zone import page_zone
from app.config import ConfigError, load_config
from app.control.schedule import evaluate
from app.health import Kind
from app.sep.der import DERControlBase
from app.sep.types import ActivePower
from hal.gpio import PATTERNS, LedState
from tests.control.builders import T0, at, control, program

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 14:00 in Berlin (CEST)


def _status(**control: Any) -> dict[str, Any]:
    return {
        "state": "ok",
        "led": "OK",
        "identity": {"LFDI": "3e4f" * 10, "SFDI": 167261211391, "expires": "2027-07-01 12:00 UTC"},
        "server": {"connected": True, "registered": True, "last read": "2026-07-01T11:59:30+00:00"},
        "control": control,
        "inverter": {"power W": -1200.0, "frequency Hz": 50.02, "state of charge %": 61.0},
        "telemetry": {"last sample": "2026-07-01T11:59:30+00:00", "waiting power": 3, "dropped": 0},
        "problems": {
            "current": [{"part": "2030.5 server", "kind": "not registered", "problem": "NotAuthorized: 403"}],
            "recent": [],
        },
    }


# --- words ---------------------------------------------------------------------------------------


def test_every_led_state_has_words_and_a_next_step() -> None:
    assert set(LED_WORDS) == set(LedState)
    assert all(headline and todo for headline, todo in LED_WORDS.values())


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (7500, "2 h 5 min"),
        (90000, "1 day 1 h"),
        (30 * 86400 + 3600, "30 days"),
    ],
)
def test_durations_for_people(seconds: float, words: str) -> None:
    assert duration(seconds) == words


def test_times_are_local_with_utc_in_the_title() -> None:
    text = local_time(datetime(2026, 7, 1, 18, 30, tzinfo=UTC), BERLIN, NOW)
    assert ">20:30</time>" in text and 'title="2026-07-01 18:30:00 UTC"' in text
    other_day = local_time(datetime(2026, 7, 3, 8, 0, tzinfo=UTC), BERLIN, NOW)
    assert ">Fri 03 Jul 10:00</time>" in other_day
    assert relative(NOW + timedelta(minutes=5), NOW) == "in 5 min"
    assert relative(NOW - timedelta(hours=2), NOW) == "2 h ago"
    assert parse_time("2027-07-01 12:00 UTC") == datetime(2027, 7, 1, 12, tzinfo=UTC)
    assert parse_time("not a time") is None and parse_time(None) is None


def test_problems_are_put_in_words_from_their_kind_never_their_text() -> None:
    words = problem_in_words({"part": "2030.5 server", "kind": Kind.CERTIFICATE, "problem": "bad cert"})
    assert words == "2030.5 server: the server refused the secure connection (certificate or TLS) (bad cert)"
    # the text is not read: a problem whose words name another error is told by its kind
    told = problem_in_words({"part": "control", "kind": "inverter", "problem": "NotAuthorized: 403"})
    assert told.startswith("control: the battery inverter does not answer")
    assert problem_in_words({"part": "x", "kind": None, "problem": "odd"}) == "x: odd"
    assert problem_in_words({"part": "x", "kind": "server", "problem": None}) == "x: recovered"
    assert set(KIND_WORDS) == set(Kind)


def test_the_page_zone_is_the_configured_one_else_the_boxs_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert page_zone("Asia/Tokyo") == zoneinfo.ZoneInfo("Asia/Tokyo")
    local = tmp_path / "localtime"
    local.write_bytes(Path("/usr/share/zoneinfo/Asia/Tokyo").read_bytes())
    zone = page_zone("localtime", local)
    assert datetime(2026, 1, 1, tzinfo=UTC).astimezone(zone).hour == 9
    assert page_zone("localtime", tmp_path / "missing") is UTC
    assert "showing UTC" in caplog.text


def test_a_wrong_time_zone_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "server: {dcap_url: 'https://x/dcap', cert_file: c, key_file: k, ca_file: a}\n"
        "inverter: {}\nstatus_page: {time_zone: Mars/Olympus}\n"
    )
    with pytest.raises(ConfigError, match="time_zone"):
        load_config(path)


# --- the LED -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(LedState))
def test_the_led_is_drawn_from_the_patterns_the_led_uses(state: LedState) -> None:
    drawn = led_drawing(state)
    pattern = PATTERNS[state]
    assert f'data-led="{state.name}"' in drawn and f'data-period="{pattern.period_s:g}"' in drawn
    on = re.findall(r'data-on="([\d.]+)-([\d.]+)"', drawn)
    assert [(float(a), float(b)) for a, b in on] == list(pattern.on)
    assert f"animation:led {pattern.period_s:g}s step-end infinite" in drawn


def test_the_led_pattern_in_words() -> None:
    assert led_words(LedState.NOT_REGISTERED) == "amber, 3 short blinks every 3 s"
    assert led_words(LedState.OK) == "green, steady, dark for 0.1 s every 5 s"
    assert led_words(LedState.ATTENTION) == "blue, 1 s on, 1 s off"
    assert len({led_words(s) for s in LedState}) == len(LedState)  # every state tells itself apart


# --- the control in words ------------------------------------------------------------------------


def test_actions_in_words() -> None:
    assert describe_action(DERControlBase(opModTargetW=ActivePower.from_watts(3000))) == "discharge 3,000 W"
    assert describe_action(DERControlBase(opModTargetW=ActivePower.from_watts(-2000))) == "charge 2,000 W"
    assert describe_action(DERControlBase(opModFixedW=-5000)) == "charge at 50 % of its maximum charge rate"
    assert describe_action(DERControlBase(opModConnect=False)) == "disconnect from the grid"
    assert describe_action(DERControlBase()) == "no power setting"


def test_events_in_force_and_scheduled_in_words() -> None:
    now_ = control("A1", 0, 600, target=(25, 2))  # 2500 W from T0 for 10 min
    later = control("B1", 3600, 1800, fixed=-3000)
    far = [control(f"C{i}", 7200 + i * 3600, 60, fixed=100) for i in range(6)]
    prog = program(1, now_, later, *far, default=DERControlBase(opModFixedW=0))
    named = type(prog)(
        prog.program.__class__(mRID="F01", primacy=1, description="Peak relief"),
        tuple(c.__class__(**{**_fields(c), "description": f"lab {c.mRID}"}) for c in prog.controls),
        prog.default_control,
    )
    plan = evaluate([named], {}, at(60), random.Random(1))
    events = describe_events(plan, [named])
    assert [e["mRID"] for e in events] == ["A1", "B1", "C0", "C1", "C2"]  # in force, then the next 4
    first = events[0]
    assert first == {
        "mRID": "A1",
        "phase": "active",
        "description": "lab A1",
        "program": "Peak relief",
        "action": "discharge 2,500 W",
        "start": T0.isoformat(),
        "end": (T0 + timedelta(seconds=600)).isoformat(),
    }
    assert events[1]["action"] == "charge at 30 % of its maximum charge rate"
    assert describe_events(None, [named]) == []
    assert describe_default(plan) == "D01: hold at 0 W"


def _fields(obj: object) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


# --- the page ------------------------------------------------------------------------------------


def _day(now: float) -> list[Sample]:
    """24 h of 30-s samples: an event from -6 h for 2 h, an outage from -12 h for 1 h."""
    out = []
    for i in range(2880):
        t = now - 86400 + 30 + i * 30
        event = now - 6 * 3600 <= t < now - 4 * 3600
        outage = now - 12 * 3600 <= t < now - 11 * 3600
        out.append(
            Sample(
                t,
                power_w=2000.0 if event else -500.0,
                setpoint_w=2000.0 if event else None,
                soc_pct=40.0,
                waiting=120 if outage else 0,
                posted=not outage,
                connected=not outage,
                event=event,
            )
        )
    return out


def test_the_page_tells_the_event_in_words_and_draws_the_day() -> None:
    now = NOW.timestamp()
    event = {
        "mRID": "00000000000000000000000500005A5A",
        "phase": "active",
        "description": "Evening peak support",
        "program": "Peak relief",
        "action": "discharge 3,000 W",
        "start": "2026-07-01T11:00:00+00:00",
        "end": "2026-07-01T13:00:00+00:00",
    }
    status = _status(events=[event], **{"setpoint W": 3000.0, "next change": "2026-07-01T13:00:00+00:00"})
    page = render_page(status, draw_charts(Window.of(_day(now)), now, BERLIN), now, BERLIN)
    assert "<script" not in page  # the essentials need no JavaScript
    assert "Evening peak support: discharge 3,000 W" in page
    assert ">13:00</time> → <time" in page and ">15:00</time>" in page and "ends in 1 h" in page
    assert "the utility's setpoint, 3,000 W" in page
    assert 'data-led="OK"' in page and "All well" in page
    assert "the server does not accept this box" in page  # the problem in words
    assert '<svg class="qr"' in page and "3E4F" not in page  # the QR is drawn, not printed
    assert "expires 2027-07-01 (in 365 days)" in page
    assert page.count('data-series="power" data-n="2880"') == 1
    assert page.count('data-series="soc" data-n="2880"') == 1
    assert 'data-series="setpoint" data-n="240"' in page
    event_spans = set(re.findall(r'data-shade="event">(.*?)</g>', page))
    assert event_spans == {
        f'<rect x="{_x(now, -6)}" y="13.0" width="{_w(2)}" height="89.0" '
        f'data-start="{now - 6 * 3600:.0f}" data-end="{now - 4 * 3600:.0f}"/>'
    }
    outage = re.search(r'data-shade="outage">(.*?)</g>', page)
    assert outage is not None
    assert f'data-start="{now - 12 * 3600:.0f}" data-end="{now - 11 * 3600:.0f}"' in outage.group(1)
    assert 'id="inverter.frequency Hz">50.02<' in page  # every field is still listed
    assert len(page) < 80_000


def _x(now: float, hours: float) -> str:
    return f"{56 + (hours * 3600 + 86400) / 86400 * 538:.1f}"


def _w(hours: float) -> str:
    return f"{hours * 3600 / 86400 * 538:.1f}"


def test_charts_break_lines_at_gaps_and_missing_values() -> None:
    now = NOW.timestamp()
    frame = Frame(now - 3600, now, UTC)
    samples = [Sample(now - 3000 + i * 30, power_w=None if i == 3 else 100.0) for i in range(6)]
    samples += [Sample(now - 600, power_w=100.0)]  # after a 40-min gap: the gateway was off
    w = Window.of(samples)
    chart = power_chart(w, frame)
    power = chart.split('data-series="power"', 1)[1]
    assert power.count("<polyline") == 3
    assert 'data-series="power" data-n="6"' in chart
    assert spans(w, array("B", (math.isnan(v) for v in w.power))) == [(now - 2910, now - 2880)]
    empty = Window.of([])
    assert 'data-n="0"' in soc_chart(empty, frame) and 'data-n="0"' in readings_chart(empty, frame)


def test_a_page_without_history_or_leds_still_renders() -> None:
    page = render_page(
        {"state": "not commissioned", "led": "NOPE"}, draw_charts(Window.of([]), 0, UTC), NOW.timestamp(), UTC
    )
    assert "State: not commissioned" in page and "No history yet" in page


def test_charts_are_drawn_again_only_when_the_ring_has_a_new_sample() -> None:
    ring = History(capacity=10)
    cache = ChartCache(ring, UTC)
    now = NOW.timestamp()
    assert "No history yet" in cache.html(now)
    ring.record(Sample(now - 60, power_w=100.0))
    first = cache.html(now)
    assert 'data-series="power" data-n="1"' in first
    assert cache.html(now + 20) is first  # no new sample: the same drawing
    ring.record(Sample(now - 30, power_w=200.0))
    assert 'data-series="power" data-n="2"' in cache.html(now + 20)


def test_the_server_card_shows_bounded_server_inputs_and_the_clock_offset() -> None:
    status = _status()
    status["server"] |= {
        "clock offset s": 2396736000,
        "bounded inputs": ["/mup pollRate 4294967295 s from the server is above the ceiling; using 86400 s"],
    }
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC).timestamp()
    page = render_page(status, "", now, BERLIN)
    assert "2396736000 s from ours" in page
    assert "<li>/mup pollRate 4294967295 s from the server is above the ceiling; using 86400 s</li>" in page
    assert "bounded inputs" not in render_page(_status(), "", now, BERLIN)
