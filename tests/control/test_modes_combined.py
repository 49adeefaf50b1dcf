"""Modes combined into one setpoint (opModMaxLimW over fixedW / targetW, connect / energize false),
written through the guard to the SunSpec simulator over real Modbus TCP."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest

from app.config import ControlConfig
from app.control.executor import Executor
from app.control.modes import PowerCommand
from app.health import Health
from hal.inverter.base import Telemetry
from hal.inverter.factory import connect_inverter
from hal.inverter.guard import SafeInverter
from tests.control.fakes import RecordingInverter
from tests.hal.conftest import SPEC, Monotonic, tcp_settings
from wattsmart_lab.sunspec_server import SunSpecServer

# SPEC: setMaxW 5000 W, discharge 5000 W, charge 4000 W.


@pytest.fixture
async def device() -> AsyncIterator[tuple[SunSpecServer, SafeInverter]]:
    async with SunSpecServer(SPEC, clock=Monotonic()) as server:
        inverter = await connect_inverter(tcp_settings(server))
        try:
            yield server, inverter
        finally:
            await inverter.close()


def executor(inverter: SafeInverter | RecordingInverter) -> Executor:
    config = ControlConfig(min_soc_percent=0, max_soc_percent=100)
    return Executor(inverter, config, Health(monotonic=lambda: 0.0))


@pytest.mark.parametrize(
    ("command", "watts"),
    [
        # fixedW +80 % of 5000 W discharge = 4000 W, capped at 50 % of setMaxW 5000 W = 2500 W
        (PowerCommand("F1", fixed_w=8000, max_limit=5000), 2500.0),
        # a cap above the setpoint changes nothing
        (PowerCommand("F2", fixed_w=4000, max_limit=9000), 2000.0),
        # targetW −3500 W charge, capped at 40 % of 5000 W = 2000 W
        (PowerCommand("T1", target_w=-3500.0, max_limit=4000), -2000.0),
        # the cap, then the charge rating (4000 W) still bounds it
        (PowerCommand("T2", target_w=-4500.0, max_limit=10000), -4000.0),
        # connect / energize false: no power exchanged, whatever the setpoint
        (PowerCommand("X1", target_w=3000.0, cease=True), 0.0),
        (PowerCommand("X2", cease=True), 0.0),
        # CSIP-AUS: fixedW 4000 W discharge under an export limit of 1500 W: the smaller discharge wins
        (PowerCommand("E1", fixed_w=8000, discharge_cap_w=1500.0), 1500.0),
        # ...and under an export limit above it, the fixedW
        (PowerCommand("E2", fixed_w=2000, discharge_cap_w=1500.0), 1000.0),
        # charge 3000 W under an import limit of 1200 W; a discharge limit does not touch charging
        (PowerCommand("I1", target_w=-3000.0, charge_cap_w=1200.0, discharge_cap_w=0.0), -1200.0),
        # every limit at once: the tightest in each direction
        (PowerCommand("A1", target_w=4000.0, max_limit=7000, discharge_cap_w=3000.0), 3000.0),
    ],
)
async def test_modes_combine_into_one_setpoint_at_the_battery(
    device: tuple[SunSpecServer, SafeInverter], command: PowerCommand, watts: float
) -> None:
    server, inverter = device
    run = executor(inverter)
    run.command(command)
    await run.step(0.0)
    assert run.written == watts
    assert server.device.battery.target_w == watts  # what the simulated device took over Modbus


async def test_a_cap_clamp_is_logged_once_per_event(
    device: tuple[SunSpecServer, SafeInverter], caplog: pytest.LogCaptureFixture
) -> None:
    _, inverter = device
    run = executor(inverter)
    caplog.set_level(logging.WARNING)
    run.command(PowerCommand("F1", fixed_w=8000, max_limit=5000))
    for t in (0.0, 100.0, 200.0):
        await run.step(t)
    lines = [r.getMessage() for r in caplog.records if "limits" in r.getMessage()]
    assert lines == ["F1 asks 4000 W; limited to 2500 W by the control's limits"]


class OwnMode(RecordingInverter):
    """The battery in its own mode draws or gives `own` W (a house load it follows)."""

    own = 0.0

    async def read_telemetry(self) -> Telemetry:
        sample = await super().read_telemetry()
        if self.model.target_w is None:
            return dataclasses.replace(sample, w=self.own)
        return sample


async def test_a_cap_alone_keeps_the_own_mode_until_it_breaks_the_cap_then_holds_it_at_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = OwnMode(SPEC)
    run = executor(device)
    device.own = 1500.0
    run.command(PowerCommand("M1", max_limit=4000))  # 2000 W
    await run.step(0.0)
    assert device.writes == [] and run.written is None  # within the cap: its own mode goes on
    device.own = -3000.0
    due = await run.step(5.0)
    assert device.writes == []  # the reading is at most SOC_CHECK_S old
    assert due is not None
    await run.step(due)
    assert run.written == -2000.0
    assert device.model.target_w == -2000.0
    assert any("breaks M1's limit: held at -2000 W" in r.getMessage() for r in caplog.records)
    run.command(None)
    await run.step(due + 1)
    assert run.written is None and device.releases


async def test_an_export_limit_alone_holds_a_discharging_battery_at_the_limit() -> None:
    device = OwnMode(SPEC)
    run = executor(device)
    device.own = 2500.0
    run.command(PowerCommand("X1", discharge_cap_w=1000.0, charge_cap_w=5000.0))
    await run.step(0.0)
    assert run.written == 1000.0 and device.model.target_w == 1000.0
