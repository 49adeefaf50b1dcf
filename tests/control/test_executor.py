"""The executor against the HAL's simulated battery: scaling by the inverter's own ratings, clamps, ramps."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from app.config import ControlConfig
from app.control.executor import (
    SAMPLE_MAX_AGE_S,
    Executor,
    fixed_w_reference,
    requested_watts,
)
from app.control.modes import PowerCommand
from app.health import Health
from app.sep import parse, to_xml
from app.sep.der import DERSettings
from app.sep.types import ActivePower
from app.telemetry.der import der_settings, nameplate
from hal.inverter.base import Ratings, Telemetry
from hal.inverter.battery import BatterySpec
from tests.control.builders import T0
from tests.control.fakes import RecordingInverter, wait_until

SPEC = BatterySpec(max_w=5000, max_charge_w=4000, max_discharge_w=3000, initial_soc_pct=50)


class FakeTime:
    """A settable clock for the simulated battery (the executor itself is handed literal times)."""

    def __init__(self) -> None:
        self.now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def set(self, seconds: float) -> float:
        self.now = T0 + timedelta(seconds=seconds)
        return seconds


def make(
    spec: BatterySpec = SPEC,
    *,
    reassert_interval_s: int = 60,
    min_soc_percent: float = 5.0,
    max_soc_percent: float = 100.0,
) -> tuple[Executor, RecordingInverter, FakeTime, Health]:
    clock = FakeTime()
    inverter = RecordingInverter(spec, wall_clock=clock)
    health = Health(monotonic=lambda: 0.0)
    config = ControlConfig(
        reassert_interval_s=reassert_interval_s,
        min_soc_percent=min_soc_percent,
        max_soc_percent=max_soc_percent,
    )
    return Executor(inverter, config, health), inverter, clock, health


def fixed(hundredths: int) -> PowerCommand:
    return PowerCommand("E1", fixed_w=hundredths)


def target(watts: float, ramp_s: float | None = None, grad_pct_per_s: float | None = None) -> PowerCommand:
    return PowerCommand("E1", target_w=watts, ramp_s=ramp_s, grad_pct_per_s=grad_pct_per_s)


@pytest.mark.parametrize(
    ("ratings", "hundredths", "watts"),
    [
        # + is a share of setMaxDischargeRateW, − of setMaxChargeRateW: the battery inverter's own.
        (Ratings(5000, 4000, 3000, 10000, 5000, 4000, 3000), 5000, 1500.0),
        (Ratings(5000, 4000, 3000, 10000, 5000, 4000, 3000), -5000, -2000.0),
        (Ratings(5000, 4000, 3000, 10000, 5000, 4000, 3000), 10000, 3000.0),
        (Ratings(5000, 4000, 3000, 10000, 5000, 4000, 3000), -1, -0.4),
        # setMaxW when the rate settings are unknown, then the nameplate ratings.
        (Ratings(6000, None, None, None, 4500, None, None), 5000, 2250.0),
        (Ratings(6000, None, None, None, 4500, None, None), -5000, -2250.0),
        (Ratings(6000, 3000, 2000, None, None, None, None), 5000, 1000.0),
        (Ratings(6000, 3000, 2000, None, None, None, None), -5000, -1500.0),
        # A rate rating beats setMaxW: the battery's own rate, as DERSettings reports it.
        (Ratings(10000, 5000, 5000, None, 10000, None, None), 5000, 2500.0),
        (Ratings(10000, 5000, 5000, None, 10000, None, None), -5000, -2500.0),
        (Ratings(None, None, None, None), 5000, None),
    ],
)
def test_fixed_w_scales_by_the_inverter_ratings(
    ratings: Ratings, hundredths: int, watts: float | None
) -> None:
    expected = pytest.approx(watts) if watts is not None else None
    assert requested_watts(fixed(hundredths), ratings) == expected


def test_fixed_w_reference_prefers_settings() -> None:
    ratings = Ratings(5000, 4000, 3000, None, 4800, 3500, 2500)
    assert fixed_w_reference(ratings, True) == 2500
    assert fixed_w_reference(ratings, False) == 3500


@pytest.mark.parametrize(
    "ratings",
    [
        Ratings(10000, 5000, 5000, None, 10000, None, None),  # WMax 10 kW, 5 kW rate ratings
        Ratings(10000, 5000, 4000, None, 8000, 3000, None),
        Ratings(6000, None, None, None, 4500, None, None),
        Ratings(6000, 3000, 2000, None, None, None, None),
        Ratings(5000, 4000, 3000, 10000, 5000, 4000, 3000),
    ],
)
@pytest.mark.parametrize("hundredths", [10000, 5000, 1, -1, -5000, -10000])
def test_fixed_w_is_what_the_server_computes_from_our_der_settings(ratings: Ratings, hundredths: int) -> None:
    settings = der_settings(nameplate(ratings, None), T0, set_grad_w=0)
    assert settings is not None
    sent = parse(DERSettings, to_xml(settings))
    # 2030.5 opModFixedW: + in % of setMaxDischargeRateW (else setMaxW), − of setMaxChargeRateW.
    rate = sent.setMaxDischargeRateW if hundredths > 0 else sent.setMaxChargeRateW
    reference = (rate or sent.setMaxW).watts
    server = hundredths / 10000 * reference
    assert requested_watts(fixed(hundredths), ratings) == pytest.approx(server)


@pytest.mark.parametrize(
    ("command", "written"),
    [
        (fixed(5000), 1500.0),
        (fixed(-5000), -2000.0),
        (fixed(-10000), -4000.0),
        (target(-2000.0), -2000.0),
        (target(1.5), 1.5),
        (target(2500.0), 2500.0),
        (target(3e9), 3000.0),  # clamped to the discharge rating
        (target(-7000.0), -4000.0),  # clamped to the charge rating
    ],
)
async def test_setpoint_written(command: PowerCommand, written: float) -> None:
    executor, inverter, _, _ = make()
    executor.command(command)
    await executor.step(0.0)
    assert inverter.watts == [written]


def test_target_w_multipliers() -> None:
    cases = [((-2, 3), -2000.0), ((15, -1), 1.5), ((-20000, -1), -2000.0), ((3, 9), 3e9), ((7, -9), 7e-9)]
    for (value, multiplier), watts in cases:
        assert ActivePower(value=value, multiplier=multiplier).watts == pytest.approx(watts)


async def test_clamp_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    executor, inverter, clock, _ = make(reassert_interval_s=1)
    executor.command(target(9000.0))
    with caplog.at_level(logging.WARNING, logger="app.control.executor"):
        for t in range(5):
            await executor.step(clock.set(t))
    assert inverter.watts == [3000.0] * 5
    assert len([r for r in caplog.records if "limited" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("soc", "command", "written"),
    [
        (4.0, target(1000.0), 0.0),  # at/below min SoC: no discharge
        (4.0, target(-1000.0), -1000.0),  # charging is fine
        (100.0, target(-1000.0), 0.0),  # full: no charge
        (100.0, target(1000.0), 1000.0),
    ],
)
async def test_state_of_charge_limits(soc: float, command: PowerCommand, written: float) -> None:
    spec = BatterySpec(max_w=5000, max_charge_w=4000, max_discharge_w=3000, initial_soc_pct=soc)
    executor, inverter, _, _ = make(spec, min_soc_percent=5.0, max_soc_percent=100.0)
    executor.command(command)
    await executor.step(0.0)
    assert inverter.watts == [written]


async def test_ramp_tms_is_a_ramp_not_a_jump() -> None:
    executor, inverter, clock, _ = make()
    executor.command(target(2000.0, ramp_s=10.0))
    due = await executor.step(clock.set(0))
    assert inverter.watts == [0.0] and due == 1.0
    for t in range(1, 11):
        due = await executor.step(clock.set(t))
    assert inverter.watts == [pytest.approx(200.0 * t) for t in range(11)]
    assert due == 10.0 + 10  # ramp done: next is the state-of-charge check


async def test_ramp_from_the_last_setpoint_to_a_new_one() -> None:
    executor, inverter, clock, _ = make()
    executor.command(target(1000.0))
    await executor.step(clock.set(0))
    executor.command(target(-1000.0, ramp_s=4.0))
    for t in range(1, 6):
        await executor.step(clock.set(t))
    assert inverter.watts == [1000.0, 500.0, 0.0, -500.0, -1000.0]


async def test_default_set_grad_w_limits_the_rate() -> None:
    executor, inverter, clock, _ = make()
    # setGradW 1000 = 10 %/s of setMaxW (5000 W) = 500 W/s: 0 -> 2000 W takes 4 s.
    executor.command(target(2000.0, grad_pct_per_s=10.0))
    for t in range(6):
        await executor.step(clock.set(t))
    assert inverter.watts == [0.0, 500.0, 1000.0, 1500.0, 2000.0]


async def test_reasserted_every_interval_while_in_force() -> None:
    executor, inverter, clock, _ = make(reassert_interval_s=60)
    executor.command(fixed(5000))
    t: float = 0
    while t <= 120:
        t = await executor.step(clock.set(t)) or 0.0  # SoC checks every 10 s, writes every 60 s
    assert [(w - T0).total_seconds() for w, _ in inverter.writes] == [0, 60, 120]
    assert await executor.step(clock.set(125)) == 135.0  # woken early (new plan, same command): no write
    assert len(inverter.writes) == 3


async def test_state_of_charge_is_watched_while_discharging() -> None:
    # 100 Wh at 6 %: 3000 W drains 1 % in 1.2 s, so the 10 s check finds it below the 5 % floor.
    spec = BatterySpec(
        max_w=5000, max_charge_w=4000, max_discharge_w=3000, capacity_wh=100, initial_soc_pct=6
    )
    executor, inverter, clock, _ = make(spec, min_soc_percent=5.0)
    executor.command(fixed(10000))
    due = await executor.step(clock.set(0))
    assert due == 10.0
    await executor.step(clock.set(due))
    assert inverter.watts == [3000.0, 0.0]


async def test_no_command_releases_once() -> None:
    executor, inverter, clock, _ = make()
    executor.command(fixed(5000))
    await executor.step(clock.set(0))
    executor.command(None)
    assert await executor.step(clock.set(1)) is None
    assert await executor.step(clock.set(2)) is None
    assert len(inverter.releases) == 1
    assert inverter.model.target_w is None
    assert executor.written is None


async def test_unreachable_inverter_is_a_problem_then_recovers() -> None:
    executor, inverter, clock, health = make()
    inverter.offline = True
    executor.command(fixed(5000))
    assert await executor.step(clock.set(0)) == 2.0
    assert "control" in health.problems()
    inverter.offline = False
    await executor.step(clock.set(2))
    assert health.problems() == {}
    assert inverter.watts == [1500.0]


async def test_unknown_ratings_release_instead_of_keeping_an_old_setpoint() -> None:
    class NoRatings(RecordingInverter):
        async def read_ratings(self) -> Ratings:
            return Ratings(None, None, None, None)

    inverter = NoRatings(SPEC)
    health = Health(monotonic=lambda: 0.0)
    executor = Executor(inverter, ControlConfig(), health)
    executor.command(target(1000.0))
    await executor.step(0.0)
    executor.command(fixed(5000))
    await executor.step(1.0)
    assert inverter.model.target_w is None
    assert "control" in health.problems()


async def test_ramp_starts_from_the_batterys_own_power_when_it_was_released() -> None:
    executor, inverter, clock, _ = make()
    await inverter.set_active_power(-1000.0)  # its own mode left it charging at 1 kW
    clock.set(10)
    await inverter.release()
    inverter.writes.clear()
    executor.command(target(1000.0, ramp_s=4.0))
    for t in range(10, 15):
        await executor.step(clock.set(t))
    assert inverter.watts == [-1000.0, -500.0, 0.0, 500.0, 1000.0]


class SlowReads(RecordingInverter):
    """A telemetry read that takes as long as the test says (RS-485 at 9600 baud: ~350 ms)."""

    def __init__(self, spec: BatterySpec, clock: FakeTime) -> None:
        super().__init__(spec, wall_clock=clock)
        self.gate = asyncio.Event()
        self.gate.set()
        self.reads = 0
        self.soc_pct: float | None = None
        """When set, the state of charge the readings report."""

    async def read_telemetry(self) -> Telemetry:
        self.reads += 1
        await self.gate.wait()
        sample = await super().read_telemetry()
        return sample if self.soc_pct is None else replace(sample, soc_pct=self.soc_pct)


def make_slow(spec: BatterySpec = SPEC) -> tuple[Executor, SlowReads, FakeTime]:
    clock = FakeTime()
    inverter = SlowReads(spec, clock)
    return (
        Executor(inverter, ControlConfig(min_soc_percent=5.0), Health(monotonic=lambda: 0.0)),
        inverter,
        clock,
    )


async def test_an_event_start_writes_without_waiting_for_a_reading() -> None:
    executor, inverter, clock = make_slow()
    assert await executor.step(clock.set(0)) is None  # idle: takes a reading for later
    assert inverter.reads == 1
    inverter.gate.clear()
    executor.command(fixed(5000))
    step = asyncio.create_task(executor.step(clock.set(30)))
    await wait_until(lambda: inverter.watts == [1500.0], timeout_s=1.0)  # while the read is stuck
    assert not step.done()  # the fresh reading follows the write
    inverter.gate.set()
    assert await step == 40.0
    assert inverter.reads == 2


async def test_a_stale_reading_is_corrected_right_after_the_write() -> None:
    executor, inverter, clock = make_slow()
    await executor.step(clock.set(0))  # idle reading: 50 %
    inverter.soc_pct = 4.0  # drained by its own mode since
    executor.command(target(1000.0))
    await executor.step(clock.set(30))
    assert inverter.watts == [1000.0, 0.0]  # the reading after the write stops the discharge at once


async def test_without_a_recent_reading_the_state_of_charge_is_read_first() -> None:
    executor, inverter, clock = make_slow()
    await executor.step(clock.set(0))  # idle reading: 50 %
    inverter.soc_pct = 4.0
    executor.command(target(1000.0))
    await executor.step(clock.set(SAMPLE_MAX_AGE_S + 1))  # the idle reading is too old to trust
    assert inverter.watts == [0.0]
