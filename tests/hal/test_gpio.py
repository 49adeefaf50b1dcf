"""Status LED patterns, button press classification and the GPIO backends, without real pins."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import types

import pytest

from hal.errors import ConfigurationError
from hal.gpio import (
    PATTERNS,
    Colour,
    FakeGpio,
    Gpio,
    GpioSettings,
    LedState,
    Press,
    PressTimings,
    PressTracker,
    RpiGpio,
    classify,
    classify_samples,
    colour_at,
    highest,
)
from hal.gpio.patterns import AMBER, BLUE, GREEN, OFF, RED, WHITE


def timeline(state: LedState, step: float = 0.05) -> tuple[tuple[bool, bool, bool], ...]:
    """The LED over one 6 s window (a multiple of every period), sampled every `step`."""
    out = []
    for i in range(int(6.0 / step)):
        c = colour_at(state, i * step + 0.001)
        out.append((c.red, c.green, c.blue))
    return tuple(out)


def test_every_state_has_a_distinct_pattern() -> None:
    assert set(PATTERNS) == set(LedState)
    timelines = {state: timeline(state) for state in LedState}
    assert len(set(timelines.values())) == len(LedState)


@pytest.mark.parametrize(
    ("state", "t", "colour"),
    [
        (LedState.FAULT, 0.1, RED),
        (LedState.FAULT, 0.3, OFF),
        (LedState.BOOTING, 0.2, AMBER),
        (LedState.BOOTING, 0.7, OFF),
        (LedState.NO_NETWORK, 0.1, AMBER),
        (LedState.NO_NETWORK, 0.6, OFF),
        (LedState.NO_SERVER, 0.6, AMBER),
        (LedState.NO_SERVER, 1.1, OFF),
        (LedState.NOT_REGISTERED, 1.1, AMBER),
        (LedState.NO_INVERTER, 0.6, RED),
        (LedState.NOT_COMMISSIONED, 1.4, WHITE),
        (LedState.NOT_COMMISSIONED, 1.6, OFF),
        (LedState.COMMISSIONING, 0.35, BLUE),
        (LedState.COMMISSIONING, 0.2, OFF),
        (LedState.ATTENTION, 0.5, BLUE),
        (LedState.OK, 2.0, GREEN),
        (LedState.OK, 5.05, OFF),
        (LedState.UPDATING, 0.05, GREEN),
        (LedState.UPDATING, 0.2, OFF),
    ],
)
def test_pattern_at_time(state: LedState, t: float, colour: Colour) -> None:
    assert colour_at(state, t) == colour


def test_blink_counts() -> None:
    def blinks(state: LedState) -> int:
        lit = [colour_at(state, i * 0.01) != OFF for i in range(300)]
        return sum(1 for a, b in zip([False, *lit], lit, strict=False) if b and not a)

    assert [blinks(s) for s in (LedState.NO_NETWORK, LedState.NO_SERVER, LedState.NOT_REGISTERED)] == [
        1,
        2,
        3,
    ]


def test_priority_order() -> None:
    assert highest(set()) is LedState.OK
    assert highest({LedState.OK, LedState.NO_SERVER, LedState.NO_INVERTER}) is LedState.NO_SERVER
    assert highest({LedState.COMMISSIONING, LedState.FAULT, LedState.UPDATING}) is LedState.FAULT
    assert list(LedState) == sorted(LedState)


@pytest.mark.parametrize(
    ("held", "press"),
    [
        (0.01, None),
        (0.3, Press.SHORT),
        (2.0, Press.SHORT),
        (3.0, None),
        (5.0, Press.LONG),
        (9.9, Press.LONG),
        (10.0, Press.VERY_LONG),
        (29.0, Press.VERY_LONG),
        (45.0, None),
    ],
)
def test_classify_by_duration(held: float, press: Press | None) -> None:
    assert classify(held) is press


def samples(*segments: tuple[float, bool], step: float = 0.01) -> list[tuple[float, bool]]:
    """(duration, level) segments → samples every `step` seconds."""
    out, t = [], 0.0
    for duration, level in segments:
        for _ in range(round(duration / step)):
            out.append((t, level))
            t += step
    return out


def test_presses_from_samples_with_bounce() -> None:
    bounce = [(0.01, True), (0.01, False), (0.01, True), (0.01, False)]
    seq = samples((0.5, False), *bounce, (0.4, True), *bounce, (1.0, False), (6.0, True), (1.0, False))
    assert classify_samples(seq) == [Press.SHORT, Press.LONG]


def test_glitch_is_not_a_press() -> None:
    assert classify_samples(samples((0.5, False), (0.03, True), (0.5, False))) == []


def test_tracker_stage_gives_feedback_while_held() -> None:
    tracker = PressTracker()
    for t, level in samples((0.1, False), (5.5, True)):
        tracker.update(level, t)
    assert tracker.stage(5.6) is Press.LONG
    assert tracker.held_s(5.6) == pytest.approx(5.5, abs=0.06)


def test_fake_backend_led_writes_only_changes() -> None:
    backend = FakeGpio()
    gpio = Gpio(GpioSettings(led_red=5, led_green=6, led_blue=13, button=19), backend)
    backend.writes.clear()
    gpio.led.render(LedState.BOOTING, 0.1)
    gpio.led.render(LedState.BOOTING, 0.2)
    assert backend.writes == [(5, True), (6, True)]
    gpio.led.render(LedState.BOOTING, 0.7)
    assert backend.outputs == {5: False, 6: False, 13: False}
    gpio.close()
    assert backend.closed


def test_active_low_led_and_blue_fallback() -> None:
    backend = FakeGpio()
    gpio = Gpio(
        GpioSettings(led_red=5, led_green=6, led_blue=None, led_active_low=True, button=None), backend
    )
    assert backend.outputs == {5: True, 6: True}  # dark = high on a common-anode LED
    gpio.led.render(LedState.ATTENTION, 0.5)
    assert backend.outputs == {5: True, 6: False}  # blue shown on green
    assert gpio.button is None


async def test_button_polled_from_asyncio() -> None:
    backend = FakeGpio()
    timings = PressTimings(debounce_s=0.01, short_max_s=0.05, long_min_s=0.08, very_long_min_s=0.5)
    gpio = Gpio(GpioSettings(button=19, poll_s=0.005, timings=timings), backend)
    assert gpio.button is not None
    presses = gpio.button.presses()
    waiter = asyncio.ensure_future(anext(presses))
    await asyncio.sleep(0.02)
    backend.press(19)
    assert gpio.button.pressed()
    await asyncio.sleep(0.15)
    backend.release(19)
    assert await asyncio.wait_for(waiter, 1.0) is Press.LONG
    await presses.aclose()


async def test_led_task_renders_and_turns_off_when_cancelled() -> None:
    backend = FakeGpio()
    gpio = Gpio(GpioSettings(), backend)
    task = asyncio.create_task(gpio.led.run(lambda: LedState.FAULT, monotonic=lambda: 0.1))
    await asyncio.sleep(0.02)
    assert backend.outputs[17] is True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(backend.outputs.values())


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="distinct"):
        GpioSettings(led_red=5, led_green=5)
    with pytest.raises(ValueError, match=r"0\.\.27"):
        GpioSettings(button=40)


def test_rpi_backend_imports_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[object, ...]]] = []

    def record(name: str) -> object:
        return lambda *args, **kw: calls.append((name, args))

    fake = types.ModuleType("RPi.GPIO")
    for name in ("setwarnings", "setmode", "setup", "output", "cleanup"):
        setattr(fake, name, record(name))
    fake.input = lambda pin: 0  # type: ignore[attr-defined]
    for const, value in {
        "BCM": 11,
        "OUT": 0,
        "IN": 1,
        "LOW": 0,
        "HIGH": 1,
        "PUD_UP": 22,
        "PUD_DOWN": 21,
    }.items():
        setattr(fake, const, value)
    package = types.ModuleType("RPi")
    package.GPIO = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake)
    gpio = Gpio(GpioSettings(backend="rpi", led_blue=None))
    assert isinstance(gpio.backend, RpiGpio)
    assert gpio.button is not None and gpio.button.pressed()  # pulled-up pin reads low: pressed
    gpio.close()
    assert ("setmode", (11,)) in calls
    assert calls[-1][0] == "cleanup"


def test_rpi_backend_without_library_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "RPi", None)
    with pytest.raises(ConfigurationError, match="fake"):
        RpiGpio()


def test_importing_hal_does_not_import_rpi() -> None:
    code = "import sys, hal.gpio, hal.inverter; assert not any(m.startswith('RPi') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
