"""Control behind the guard: a changed rating changes the setpoint in force, an unbounded event is refused
(252) and nothing is written, and an implausible state of charge does not silently drop the SoC limits."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from app.config import ControlConfig
from app.control.engine import ControlEngine
from app.control.executor import Executor
from app.control.modes import PowerCommand
from app.health import Health
from app.sep.response import ResponseStatus
from hal.inverter import Nameplate, Ratings, SafeInverter
from hal.inverter.base import Telemetry
from hal.inverter.battery import BatterySpec
from tests.control.builders import control, program
from tests.control.fakes import FakeServer, RecordingInverter, wait_until
from tests.control.test_engine import LFDI, make_config, now_s, running
from tests.control.test_executor import FakeTime

SPEC = BatterySpec(max_w=5000, max_charge_w=5000, max_discharge_w=5000, initial_soc_pct=50)


class Monotonic:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class NoRatings(RecordingInverter):
    """An inverter that answers but reports no rating at all (its 702 scale factor "not implemented")."""

    async def read_ratings(self) -> Ratings:
        await super().read_ratings()
        return Ratings(None, None, None, None)


class SocReports(RecordingInverter):
    """Readings whose state of charge the test sets (None: the battery model's)."""

    soc: float | None = None

    async def read_telemetry(self) -> Telemetry:
        sample = await super().read_telemetry()
        return sample if self.soc is None else dataclasses.replace(sample, soc_pct=self.soc)


async def test_a_fixed_w_event_follows_a_lowered_rating_within_a_minute() -> None:
    clock, mono = FakeTime(), Monotonic()
    device = RecordingInverter(SPEC, wall_clock=clock)
    guard = SafeInverter(device, monotonic=mono)
    executor = Executor(guard, ControlConfig(), Health(monotonic=lambda: 0.0))
    executor.command(PowerCommand("E1", fixed_w=5000))  # +50 % of the max discharge rate
    await executor.step(clock.set(0))
    assert device.watts == [2500.0]
    device.model.spec = dataclasses.replace(SPEC, max_w=3000, max_discharge_w=3000)
    mono.t = 30.0
    await executor.step(clock.set(30))
    assert device.watts == [2500.0]  # the guard's copy is 30 s old: still the old maximum
    mono.t = 60.0
    assert await executor.step(clock.set(60)) == 60  # the copy is a minute old: re-read, changed: again now
    await executor.step(clock.set(60))
    assert device.watts[-1] == 1500.0  # 50 % of the new maximum
    assert set(device.watts) == {2500.0, 1500.0}


async def test_every_write_stays_under_the_nameplate_whatever_the_command() -> None:
    clock, mono = FakeTime(), Monotonic()
    device = RecordingInverter(dataclasses.replace(SPEC, max_w=9000, max_discharge_w=9000), wall_clock=clock)
    guard = SafeInverter(device, Nameplate(max_discharge_w=4000, max_charge_w=3000), monotonic=mono)
    executor = Executor(
        guard, ControlConfig(min_soc_percent=0, max_soc_percent=100), Health(monotonic=lambda: 0.0)
    )
    commands = [
        PowerCommand("E1", target_w=3.3e13),
        PowerCommand("E2", target_w=-3.3e13),
        PowerCommand("E3", fixed_w=10000),
        PowerCommand("default", fixed_w=-10000),
        PowerCommand("E4", target_w=20_000, ramp_s=10),
    ]
    for n, command in enumerate(commands):
        executor.command(command)
        for step in range(12):
            await executor.step(clock.set(n * 100 + step))
    assert device.watts and max(device.watts) == 4000.0 and min(device.watts) == -3000.0


async def test_an_event_no_limit_bounds_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    poster, health = FakeServer(), Health()
    device = NoRatings(SPEC)
    guard = SafeInverter(device)
    engine = ControlEngine(make_config(tmp_path), guard, poster, LFDI, rng=random.Random(1), health=health)
    async with running(engine):
        engine.update([program(1, control("E1", now_s(-1), 3600, target=(1000, 0)))])
        await wait_until(lambda: len(poster.posted) == 3)
    # It had started when the write found no limit: started, then refused as not applicable.
    assert [r.status for _, r in poster.posted] == [
        ResponseStatus.EVENT_RECEIVED,
        ResponseStatus.EVENT_STARTED,
        ResponseStatus.REJECTED_NOT_APPLICABLE,
    ]
    assert device.writes == []
    assert "no power limit known" in guard.problems["limit"]  # the status page shows it while it holds
    assert any(e.problem and "no power limit known" in e.problem for e in health.recent)
    assert engine.plan is not None and engine.plan.states["E1"].code == ResponseStatus.REJECTED_NOT_APPLICABLE


async def test_a_state_of_charge_that_turns_implausible_keeps_the_limit() -> None:
    clock = FakeTime()
    device = SocReports(SPEC, wall_clock=clock)
    executor = Executor(
        SafeInverter(device), ControlConfig(min_soc_percent=10), Health(monotonic=lambda: 0.0)
    )
    device.soc = 8.0  # below the minimum: no discharge
    executor.command(PowerCommand("E1", target_w=2000))
    await executor.step(clock.set(0))
    assert device.watts == [0.0]
    device.soc = 200.0  # garbage: the guard makes it unknown
    for t in range(10, 300, 10):
        await executor.step(clock.set(t))
    assert set(device.watts) == {0.0}  # the last good SoC still limits
    await executor.step(clock.set(700))  # after SOC_HOLD_S nothing is known: unknown does not clamp
    assert device.watts[-1] == 2000.0
