"""Named recovery: an inverter that cannot work as configured is told once and not retried every 2 s.

A real SunSpec device over Modbus TCP whose map has no power control (701/702 but neither 704 nor
124): the HAL raises ProfileError, a configuration error, on the first write.
"""

from __future__ import annotations

import logging

import pytest

from app.config import ControlConfig
from app.control.executor import PART, RETRY_S, Executor
from app.control.modes import PowerCommand
from app.health import Health, Kind
from tests.hal.conftest import SPEC, Monotonic
from tests.hal.test_sunspec_setpoint import counters, sunspec
from wattsmart_lab.sunspec_server import SunSpecServer

NO_CONTROL = (1, 701, 702, 713)


async def test_a_configuration_error_is_told_once_and_waits_for_a_new_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health(monotonic=lambda: 0.0)
    async with (
        SunSpecServer(SPEC, clock=Monotonic(), models=NO_CONTROL) as server,
        sunspec(server) as inverter,
    ):
        executor = Executor(inverter, ControlConfig(), health)
        executor.command(PowerCommand("E1", target_w=2000.0))
        with caplog.at_level(logging.INFO):
            assert await executor.step(0.0) is None  # nothing is due again by itself
            assert health.kind(PART) is Kind.CONFIGURATION
            tried = counters(inverter)[0]
            for now in (RETRY_S, 10 * RETRY_S, 3600.0):  # the engine's wake-ups: no Modbus traffic
                assert await executor.step(now) is None
            assert counters(inverter)[0] == tried
            executor.command(PowerCommand("E2", target_w=1500.0))  # a new control tries again
            assert await executor.step(3601.0) is None
            assert counters(inverter)[0] > tried
        told = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(told) == 1, told
        assert "no 704 or 124 power control" in told[0] and "fix the inverter section" in told[0]
        assert server.device.writes == []


async def test_a_transient_fault_is_retried_soon() -> None:
    """The contrast: an inverter that does not answer is an inverter problem, tried again in 2 s."""
    health = Health(monotonic=lambda: 0.0)
    async with SunSpecServer(SPEC, clock=Monotonic()) as server, sunspec(server) as inverter:
        executor = Executor(inverter, ControlConfig(), health)
        executor.command(PowerCommand("E1", target_w=2000.0))
        await server.cut()
        assert await executor.step(0.0) == RETRY_S
        assert health.kind(PART) is Kind.INVERTER
