"""The front panel: LED wake-ups only at pattern edges, button presses to actions, reset at power-on.

The pins are the HAL's fake backend; time is an injected clock (no real waiting for the patterns).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from app.commissioning.panel import IDLE_POLL_S, RESULT_SHOW_S, STUCK_S, Panel, gpio_settings, next_edge
from app.config import GpioConfig
from hal.gpio import FakeCharDevice, FakeChip, FakeGpio, Gpio, LedState, colour_at, open_gpio
from hal.gpio.patterns import PATTERNS

CFG = GpioConfig(backend="fake")


def make_panel(
    state: LedState = LedState.OK, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> tuple[Panel, FakeGpio, list[str], list[float]]:
    backend = FakeGpio()
    settings = gpio_settings(CFG)
    assert settings is not None
    presses: list[str] = []
    now = [1000.0]

    async def on_press(kind: str) -> None:
        presses.append(kind)

    panel = Panel(
        CFG, lambda: state, on_press, gpio=Gpio(settings, backend), monotonic=lambda: now[0], sleep=sleep
    )
    return panel, backend, presses, now


@pytest.mark.parametrize("state", list(LedState))
def test_next_edge_is_where_the_pattern_changes(state: LedState) -> None:
    period = PATTERNS[state].period_s
    t = 0.0
    changes = 0
    while t < 3 * period:
        edge = next_edge(state, t)
        assert edge > t
        # nothing changes strictly between t and the edge...
        for k in range(1, 20):
            probe = t + (edge - t) * k / 20
            assert colour_at(state, probe) == colour_at(state, t + 1e-6), (state, t, probe)
        # ...and the colour differs right after the edge (unless the pattern is steady)
        if colour_at(state, edge + 1e-6) != colour_at(state, edge - 1e-6):
            changes += 1
        t = edge
    assert changes >= 2  # every pattern blinks at least once per period


def test_led_wakes_only_at_edges_for_a_steady_state() -> None:
    # OK is dark 0.1 s every 5 s: two edges per period; with the 1 s state re-check, at most ~1.4/s
    t, wakeups = 0.0, 0
    while t < 3600:
        t = min(next_edge(LedState.OK, t), t + 1.0)
        wakeups += 1
    assert wakeups < 1.5 * 3600


def test_self_test_result_overrides_the_state_for_a_while() -> None:
    panel, _, _, now = make_panel(LedState.NO_SERVER)
    assert panel.shown_state() is LedState.NO_SERVER
    panel.show_result(ok=False)
    assert panel.shown_state() is LedState.FAULT
    now[0] += RESULT_SHOW_S + 0.1
    assert panel.shown_state() is LedState.NO_SERVER


async def test_short_and_long_presses_reach_the_gateway() -> None:
    panel, backend, presses, now = make_panel()
    pin = CFG.button

    async def step(seconds: float) -> None:
        """Let the button loop take a sample or two, then move the panel's clock on."""
        await asyncio.sleep(IDLE_POLL_S * 1.5)
        now[0] += seconds

    async def press_for(seconds: float) -> None:
        backend.press(pin)
        await step(seconds)
        await step(0.0)  # a sample while still held, past the debounce time
        backend.release(pin)
        await step(0.1)
        await step(0.0)

    task = asyncio.create_task(panel.run())
    try:
        await press_for(0.3)
        assert presses == ["short"]
        await press_for(7.0)
        assert presses == ["short", "long"]
        assert any(high for _, high in backend.writes)  # the LED was driven meanwhile
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_hold_at_power_on_for_ten_seconds_resets() -> None:
    naps: list[float] = []
    release_after: list[int] = []

    async def nap(seconds: float) -> None:  # time passes only when the panel sleeps
        naps.append(seconds)
        now[0] += seconds
        if release_after and len(naps) == release_after[0]:
            backend.release(CFG.button)

    panel, backend, _, now = make_panel(sleep=nap)
    release_after.append(int(12 / 0.02))  # let go after 12 s
    backend.press(CFG.button)
    assert await panel.held_at_power_on() is True
    assert sum(naps) == pytest.approx(12, abs=0.05)

    naps.clear()
    release_after[0] = 10_000  # never let go: a stuck button
    backend.press(CFG.button)
    assert await panel.held_at_power_on() is False
    assert sum(naps) == pytest.approx(STUCK_S, abs=0.05)

    naps.clear()
    release_after[0] = 100  # let go after 100 polls of 20 ms = 2 s
    backend.press(CFG.button)
    assert await panel.held_at_power_on() is False
    assert sum(naps) == pytest.approx(2.0, abs=0.05)


async def test_no_panel_configured_means_no_wakeups() -> None:
    panel = Panel(GpioConfig(backend="none"), lambda: LedState.OK, lambda _: asyncio.sleep(0))
    assert panel.gpio is None
    assert await panel.held_at_power_on() is False
    task = asyncio.create_task(panel.run())
    await asyncio.sleep(0.01)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_presses_reach_the_gateway_through_gpiochip_edge_events() -> None:
    # the SoC's chip on a Pi 4, the button asleep on edge events: real time, short presses
    device = FakeCharDevice({"/dev/gpiochip1": FakeChip("pinctrl-bcm2711", 58)})
    settings = gpio_settings(GpioConfig(backend="gpiochip"))
    assert settings is not None
    gpio = open_gpio(settings, device=device)
    assert gpio is not None and gpio.button is not None and gpio.button.has_edges
    presses: list[str] = []

    async def on_press(kind: str) -> None:
        presses.append(kind)

    panel = Panel(CFG, lambda: LedState.OK, on_press, gpio=gpio)
    task = asyncio.create_task(panel.run())
    try:
        await asyncio.sleep(0.05)
        device.set_input("pinctrl-bcm2711", 23, False)
        await asyncio.sleep(0.2)
        device.set_input("pinctrl-bcm2711", 23, True)
        for _ in range(50):
            await asyncio.sleep(0.02)
            if presses:
                break
        assert presses == ["short"]
        assert device.chip("pinctrl-bcm2711").lines[27].writes  # the green LED was driven
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        panel.close()
