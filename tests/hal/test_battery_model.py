"""The battery model and the `sim` transport, driven with literal times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from hal.inverter import (
    BatterySpec,
    ConfigurationError,
    InverterSettings,
    InverterUnreachable,
    connect_inverter,
    open_inverter,
)
from wattsmart_lab.battery import BatteryModel
from wattsmart_lab.sim import SimInverter

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class FakeClock:
    """A wall clock that only moves when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_power_ramps_to_setpoint_and_soc_integrates() -> None:
    model = BatteryModel(BatterySpec(ramp_w_per_s=1000.0, capacity_wh=10000.0), now=0.0)
    model.command(-3000.0, now=0.0)
    model.advance(1.0)
    assert model.power_w == pytest.approx(-1000.0)
    model.advance(3.0)
    assert model.power_w == pytest.approx(-3000.0)
    model.advance(3603.0)
    # 3 s of ramp (1.25 Wh) then one hour at 3 kW: 3001.25 Wh into a 10 kWh pack from 50 %.
    assert model.soc_pct == pytest.approx(50.0 + 3001.25 / 100.0, abs=0.001)


def test_setpoint_is_clamped_to_ratings() -> None:
    model = BatteryModel(BatterySpec(max_charge_w=2000.0, max_discharge_w=4000.0, max_w=5000.0), now=0.0)
    model.command(-9000.0, now=0.0)
    assert model.target_w == -2000.0
    model.command(9000.0, now=0.0)
    assert model.target_w == 4000.0


def test_empty_battery_stops_discharging() -> None:
    model = BatteryModel(BatterySpec(capacity_wh=100.0, initial_soc_pct=1.0, ramp_w_per_s=1e6), now=0.0)
    model.command(1000.0, now=0.0)
    model.advance(60.0)
    assert model.soc_pct == 0.0
    assert model.power_w == pytest.approx(0.0, abs=1e-6)


def test_revert_timer_expires_unless_refreshed() -> None:
    model = BatteryModel(BatterySpec(ramp_w_per_s=1e6), now=0.0)
    model.command(2000.0, now=0.0, hold_s=10.0)
    model.refresh(now=8.0, hold_s=10.0)
    model.advance(15.0)
    assert model.target_w == 2000.0
    assert model.revert_remaining_s(15.0) == pytest.approx(3.0)
    model.advance(18.5)
    assert model.target_w is None
    assert model.power_w == pytest.approx(0.0)


def test_frequency_wanders_near_nominal_deterministically() -> None:
    a = BatteryModel(BatterySpec(seed=1), now=0.0)
    b = BatteryModel(BatterySpec(seed=1), now=0.0)
    samples = [a.hz(t) for t in range(0, 120, 3)]
    assert samples == [b.hz(t) for t in range(0, 120, 3)]
    assert all(59.95 < hz < 60.05 for hz in samples)
    assert max(samples) - min(samples) > 0.01


async def test_sim_transport_follows_setpoint_and_reverts() -> None:
    clock = FakeClock()
    settings = InverterSettings(transport="sim", revert_timeout_s=30.0, sim=BatterySpec(ramp_w_per_s=1e6))
    async with open_inverter(settings, wall_clock=clock, auto_keepalive=False) as inverter:
        ratings = await inverter.read_ratings()
        assert ratings.max_w == 5000.0
        assert ratings.energy_capacity_wh == 10000.0
        assert await inverter.set_active_power(-2500.4) == -2500.0
        clock.advance(20)
        telemetry = await inverter.read_telemetry()
        assert telemetry.w == pytest.approx(-2500.0)
        assert telemetry.timestamp == clock.now
        assert telemetry.soc_pct is not None and telemetry.soc_pct > 50.0
        assert telemetry.hz is not None and 59.9 < telemetry.hz < 60.1
        await inverter.keepalive()
        clock.advance(20)
        assert (await inverter.read_telemetry()).w == pytest.approx(-2500.0)
        clock.advance(15)
        assert (await inverter.read_telemetry()).w == pytest.approx(0.0)


async def test_sim_offline_raises_unreachable() -> None:
    inverter = await connect_inverter(InverterSettings(transport="sim"))
    inverter.inner.offline = True  # type: ignore[attr-defined]
    with pytest.raises(InverterUnreachable):
        await inverter.read_telemetry()
    await inverter.close()


async def test_sim_transport_without_the_lab_package_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A box has no simulator: transport "sim" finds no registered simulated battery and says so."""
    from hal.inverter import factory

    inverter = await connect_inverter(InverterSettings(transport="sim"))
    assert isinstance(inverter.inner, SimInverter)  # with the lab package installed
    await inverter.close()
    # the lab package registers under its entry-point group; a group nothing registers is what a box sees
    monkeypatch.setattr(factory, "SIM_ENTRY_POINTS", "wattsmart_gateway.no_such_group")
    factory._simulator_factory.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match='transport "sim" needs the simulated battery'):
            await connect_inverter(InverterSettings(transport="sim"))
    finally:
        monkeypatch.undo()
        factory._simulator_factory.cache_clear()


def test_settings_validate_once() -> None:
    with pytest.raises(ValueError, match="needs tcp settings"):
        InverterSettings(transport="tcp")
    with pytest.raises(ValueError, match="keepalive_interval_s"):
        InverterSettings(transport="sim", revert_timeout_s=10, keepalive_interval_s=20)


async def test_open_inverter_keeps_the_revert_timer_fresh() -> None:
    clock = FakeClock()
    settings = InverterSettings(
        transport="sim", revert_timeout_s=30.0, keepalive_interval_s=0.01, sim=BatterySpec(ramp_w_per_s=1e6)
    )
    async with open_inverter(settings, wall_clock=clock) as inverter:
        await inverter.set_active_power(1000.0)
        for _ in range(3):
            clock.advance(20)  # each step alone is below the 30 s timer; together they exceed it
            await asyncio.sleep(0.05)  # let the keepalive task (owned by open_inverter) run
        assert (await inverter.read_telemetry()).w == pytest.approx(1000.0)
