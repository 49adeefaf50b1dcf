"""The gpiochip backend: the SoC's chip found by label, lines requested, the button on edge events.

The kernel's GPIO character device cannot exist on the test machine (no GPIO in its kernel, no
gpio-sim), so the backend runs over the HAL's fake character device (hal/gpio/fake.py): chips
with labels, busy lines, a sandbox that refuses a chip, and edge events on a real pipe that
asyncio waits on. The `gpiod` binding itself is exercised where it can be without a chip, and on
the Pi's device tree by `make image-test-pi`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hal.errors import ConfigurationError
from hal.gpio import (
    FakeCharDevice,
    FakeChip,
    Gpio,
    GpiochipGpio,
    GpiodDevice,
    GpioSettings,
    LedState,
    Press,
    PressTimings,
    find_soc_chip,
    open_backend,
    open_gpio,
)

PI3 = {
    "/dev/gpiochip0": FakeChip("pinctrl-bcm2835", 54),
    "/dev/gpiochip1": FakeChip("raspberrypi-exp-gpio", 8),
}
PI4 = {
    "/dev/gpiochip0": FakeChip("raspberrypi-exp-gpio", 8),
    "/dev/gpiochip1": FakeChip("pinctrl-bcm2711", 58),
}
# Pi 5 on kernels before 6.6.45: the RP1's header bank is gpiochip4, after the SoC's own chips
PI5 = {f"/dev/gpiochip{n}": FakeChip(f"gpio-brcmstb@{n}", 32) for n in range(4)} | {
    "/dev/gpiochip4": FakeChip("pinctrl-rp1", 54)
}
FAST = PressTimings(debounce_s=0.01, short_max_s=0.05, long_min_s=0.08, very_long_min_s=0.5)


@pytest.mark.parametrize(
    ("chips", "path", "label"),
    [
        (PI3, "/dev/gpiochip0", "pinctrl-bcm2835"),
        (PI4, "/dev/gpiochip1", "pinctrl-bcm2711"),
        (PI5, "/dev/gpiochip4", "pinctrl-rp1"),
    ],
    ids=["pi3", "pi4", "pi5"],
)
def test_the_soc_chip_is_found_by_label_whatever_its_number(
    chips: dict[str, FakeChip], path: str, label: str
) -> None:
    found = find_soc_chip(FakeCharDevice(chips))
    assert (found.path, found.label) == (Path(path), label)


def test_a_chip_the_sandbox_refuses_is_skipped_and_named() -> None:
    chips = {
        "/dev/gpiochip0": FakeChip("pinctrl-bcm2835", 54, allowed=False),
        "/dev/gpiochip1": FakeChip("raspberrypi-exp-gpio", 8),
    }
    with pytest.raises(ConfigurationError) as err:
        find_soc_chip(FakeCharDevice(chips))
    assert "/dev/gpiochip0: Operation not permitted" in str(err.value)
    assert "/dev/gpiochip1: raspberrypi-exp-gpio" in str(err.value)


def test_leds_and_button_on_the_soc_chip_with_bcm_numbers() -> None:
    device = FakeCharDevice(PI4)
    gpio = Gpio(GpioSettings(backend="gpiochip"), GpiochipGpio(device))
    chip = device.chip("pinctrl-bcm2711")
    assert {o for o, line in chip.lines.items() if line.output} == {17, 27, 22}
    assert chip.lines[23].output is False and chip.lines[23].pull_up  # active-low button
    gpio.led.render(LedState.BOOTING, 0.1)  # amber = red + green
    assert (chip.lines[17].level, chip.lines[27].level, chip.lines[22].level) == (True, True, False)
    assert gpio.button is not None and not gpio.button.pressed()
    device.set_input("pinctrl-bcm2711", 23, False)  # the contact pulls the line to ground
    assert gpio.button.pressed()
    gpio.close()
    assert all(line.output is None for line in chip.lines.values())
    assert chip.lines[17].level is False  # the LED was turned off before the lines went back
    # released for real: the same lines can be requested again
    Gpio(GpioSettings(backend="gpiochip"), GpiochipGpio(device)).close()


def test_a_pin_held_by_another_process_is_an_error() -> None:
    device = FakeCharDevice(PI3)
    device.request_output(Path("/dev/gpiochip0"), 27)
    with pytest.raises(OSError, match="busy"):
        Gpio(GpioSettings(backend="gpiochip"), GpiochipGpio(device))


class CountingChip(GpiochipGpio):
    """Counts the button's reads, to see whether the idle button is polled."""

    reads = 0

    def read(self, pin: int) -> bool:
        self.reads += 1
        return super().read(pin)


async def press(device: FakeCharDevice, label: str, seconds: float) -> None:
    device.set_input(label, 23, False)
    await asyncio.sleep(seconds)
    device.set_input(label, 23, True)


@pytest.mark.parametrize("irq", [True, False], ids=["edge-events", "no-irq-polled"])
async def test_button_presses_through_edge_events(irq: bool) -> None:
    chips = {"/dev/gpiochip0": FakeChip("pinctrl-bcm2835", 54, irq=irq)}
    device = FakeCharDevice(chips)
    backend = CountingChip(device)
    gpio = Gpio(GpioSettings(backend="gpiochip", poll_s=0.005, timings=FAST), backend)
    assert gpio.button is not None and gpio.button.has_edges is irq
    presses = gpio.button.presses()
    waiter = asyncio.ensure_future(anext(presses))
    await asyncio.sleep(0.3)  # nobody touches the button
    idle_reads = backend.reads
    # with edge events the idle button is read once, then the loop sleeps on the descriptor
    assert idle_reads <= 2 if irq else idle_reads >= 20
    await press(device, "pinctrl-bcm2835", 0.02)
    assert await asyncio.wait_for(waiter, 1.0) is Press.SHORT
    waiter = asyncio.ensure_future(anext(presses))
    await press(device, "pinctrl-bcm2835", 0.15)
    assert await asyncio.wait_for(waiter, 1.0) is Press.LONG
    # a bounce shorter than the debounce time is no press, and the loop goes back to sleep
    waiter = asyncio.ensure_future(anext(presses))
    await press(device, "pinctrl-bcm2835", 0.002)
    await asyncio.sleep(0.1)
    assert not waiter.done()
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await presses.aclose()
    gpio.close()


def test_auto_prefers_the_gpiochip(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hal.gpio")
    backend = open_backend("auto", device=FakeCharDevice(PI5))
    assert isinstance(backend, GpiochipGpio) and backend.chip.label == "pinctrl-rp1"
    assert "GPIO: gpiochip /dev/gpiochip4 (pinctrl-rp1)" in caplog.messages
    backend.close()


def test_auto_without_gpio_runs_without_leds_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hal.gpio")
    device = FakeCharDevice({"/dev/gpiochip0": FakeChip("gpio-mockup-A", 8)})
    assert open_gpio(GpioSettings(backend="auto"), device=device) is None
    assert len(caplog.records) == 1 and caplog.records[0].levelno == logging.WARNING
    assert "running without the status LED and button" in caplog.messages[0]
    assert "gpio-mockup-A" in caplog.messages[0]


def test_explicit_gpiochip_without_a_chip_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no GPIO chip labelled"):
        open_backend("gpiochip", device=FakeCharDevice({}))


def test_the_gpiod_binding_looks_at_dev_without_chips(tmp_path: Path) -> None:
    # the real binding, on a folder with no chips and with a file that only looks like one
    device = GpiodDevice(dev_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="no GPIO chip at all"):
        find_soc_chip(device)
    (tmp_path / "gpiochip0").write_bytes(b"")
    with pytest.raises(ConfigurationError, match="gpiochip0 is not a GPIO chip"):
        find_soc_chip(device)


def test_auto_on_this_machine_finds_what_is_there() -> None:
    # the test machines have no gpiochip and no RPi.GPIO: auto must settle for none, not fail
    if list(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has a GPIO chip")
    assert open_backend("auto") is None
