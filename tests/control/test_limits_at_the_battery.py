"""A cap-only control (CSIP-AUS export/generation limit, opModMaxLimW) held by the inverter as a limit
(704 WMaxLimPct; 124 rate limits on a legacy inverter) while the battery keeps its own mode; a
setpoint, or a cap the inverter cannot hold, as before.
The executor through the guard and the SunSpec code to the Modbus simulator on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from app.config import ControlConfig
from app.control.executor import Executor
from app.control.modes import PowerCommand
from app.health import Health
from hal.inverter.guard import SafeInverter
from hal.inverter.settings import Nameplate
from tests.hal.conftest import SPEC, Monotonic
from tests.hal.test_sunspec_setpoint import sunspec
from wattsmart_lab.sunspec_device import LEGACY_MODELS
from wattsmart_lab.sunspec_server import SunSpecServer

REASSERT_S = 20


@contextlib.asynccontextmanager
async def executor_on_sim(clock: Monotonic) -> AsyncIterator[tuple[Executor, SunSpecServer]]:
    async with SunSpecServer(SPEC, clock=clock) as server, sunspec(server, revert_timeout_s=60.0) as device:
        guarded = SafeInverter(device, Nameplate(max_discharge_w=5000.0, max_charge_w=4000.0))
        config = ControlConfig(reassert_interval_s=REASSERT_S)
        yield Executor(guarded, config, Health(monotonic=lambda: 0.0)), server


def limit_writes(server: SunSpecServer) -> int:
    at = server.device.address(704, "WMaxLimPctEna")
    return sum(1 for w in server.device.writes if w.address == at and len(w.values) > 1)


async def test_an_export_limit_is_a_limit_at_the_battery_not_a_setpoint() -> None:
    clock = Monotonic()
    async with executor_on_sim(clock) as (executor, server):
        dev = server.device
        dev.battery.own_w = 4000.0  # its own mode: covering a 4 kW house load
        executor.command(PowerCommand("E1", discharge_cap_w=1500.0))
        await executor.step(0.0)
        assert dev.get(704, "WMaxLimPctEna") == 1 and dev.get(704, "WSetEna") == 0
        assert executor.written is None  # no setpoint
        clock.advance(1)
        dev.on_access(clock())
        assert dev.battery.power_w == pytest.approx(1500)
        dev.battery.own_w = 600.0  # the load drops: the battery follows its own mode under the cap
        clock.advance(1)
        dev.on_access(clock())
        assert dev.battery.power_w == pytest.approx(600)

        # kept: rewritten every reassert interval (restarting the device's revert timer), not per step
        due = await executor.step(5.0)
        assert limit_writes(server) == 1 and due is not None and due <= REASSERT_S
        await executor.step(REASSERT_S)
        assert limit_writes(server) == 2

        # a setpoint replaces the limits
        executor.command(PowerCommand("E2", target_w=-1000.0))
        await executor.step(30.0)
        assert dev.get(704, "WMaxLimPctEna") == 0 and dev.get(704, "WSetEna") == 1
        assert executor.written == -1000.0

        # a charge cap: 704 has no point for it, so the old way (own mode until it breaks the cap)
        executor.command(PowerCommand("E3", charge_cap_w=500.0, discharge_cap_w=2000.0))
        dev.battery.own_w = 1000.0
        await executor.step(40.0)
        assert dev.get(704, "WMaxLimPctEna") == 0 and dev.get(704, "WSetEna") == 0
        assert limit_writes(server) == 2

        # back to a discharge cap, then nothing in force: released, the limit withdrawn
        executor.command(PowerCommand("E4", discharge_cap_w=300.0))
        await executor.step(50.0)
        assert dev.get(704, "WMaxLimPctEna") == 1 and dev.get(704, "WMaxLimPct") == 60  # 6.0 %
        executor.command(None)
        await executor.step(60.0)
        assert dev.get(704, "WMaxLimPctEna") == 0 and dev.get(704, "WSetEna") == 0
        clock.advance(1)
        dev.on_access(clock())
        assert dev.battery.power_w == pytest.approx(1000)


async def test_a_max_limit_alone_is_held_by_a_legacy_inverter_both_ways() -> None:
    clock = Monotonic()
    async with (
        SunSpecServer(SPEC, clock=clock, models=LEGACY_MODELS) as server,
        sunspec(server, revert_timeout_s=60.0) as device,
    ):
        guarded = SafeInverter(device, Nameplate(max_discharge_w=5000.0, max_charge_w=4000.0))
        executor = Executor(
            guarded, ControlConfig(reassert_interval_s=REASSERT_S), Health(monotonic=lambda: 0.0)
        )
        dev = server.device
        dev.battery.own_w = -3000.0
        executor.command(PowerCommand("M1", max_limit=2000))  # 20 % of WMax 5000 W: 1000 W either way
        await executor.step(0.0)
        # 124 rate limits in hundredths of a percent of WChaMax (4000 W): 25 % both ways
        assert (dev.get(124, "StorCtl_Mod"), dev.get(124, "OutWRte"), dev.get(124, "InWRte")) == (
            3,
            2500,
            2500,
        )
        clock.advance(1)
        dev.on_access(clock())
        assert dev.battery.power_w == pytest.approx(-1000)
        assert executor.written is None
        executor.command(None)
        await executor.step(10.0)
        assert dev.get(124, "StorCtl_Mod") == 0
