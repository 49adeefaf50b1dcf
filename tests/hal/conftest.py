"""Fixtures for the hardware-layer tests: simulators on 127.0.0.1 and a clock that moves on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hal.inverter import BatterySpec, InverterSettings
from hal.modbus import BusSettings, SerialSettings, TcpSettings
from wattsmart_lab.sunspec_device import LEGACY_MODELS
from wattsmart_lab.sunspec_server import SunSpecServer

# Short timings keep the fault tests fast; 0.3 s × 2 tries bounds a dead-device call at ~0.6 s.
FAST_BUS = BusSettings(
    timeout_s=0.3,
    retries=1,
    inter_frame_gap_s=0.0,
    quiet_after_timeout_s=0.05,
    settle_after_connect_s=0.0,
    reconnect_min_s=0.05,
    reconnect_max_s=0.2,
    failures_before_reconnect=2,
)
SPEC = BatterySpec(ramp_w_per_s=1e6, max_charge_w=4000.0, max_discharge_w=5000.0, max_w=5000.0)


class Monotonic:
    """A monotonic clock for simulators that only moves when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def tcp_settings(server: SunSpecServer, **kw: object) -> InverterSettings:
    """Settings reaching a simulator over Modbus TCP."""
    return InverterSettings(
        transport="tcp",
        tcp=TcpSettings("127.0.0.1", server.port),
        **{"bus": FAST_BUS, **kw},  # type: ignore[arg-type]
    )


def rtu_settings(server: SunSpecServer, **kw: object) -> InverterSettings:
    """Settings reaching an RTU-framing simulator through pyserial's socket:// URL at 9600 baud."""
    return InverterSettings(
        transport="rtu",
        serial=SerialSettings(server.serial_url, baudrate=9600),
        **{"bus": FAST_BUS, **kw},  # type: ignore[arg-type]
    )


@pytest.fixture
def sim_clock() -> Monotonic:
    return Monotonic()


@pytest.fixture
async def tcp_server(sim_clock: Monotonic) -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer(SPEC, clock=sim_clock) as server:
        yield server


@pytest.fixture(params=["tcp", "rtu"])
async def any_server(request: pytest.FixtureRequest, sim_clock: Monotonic) -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer(SPEC, clock=sim_clock, framing=request.param) as server:
        yield server


def settings_for(server: SunSpecServer, **kw: object) -> InverterSettings:
    """TCP or RTU settings, whichever framing the server speaks."""
    return rtu_settings(server, **kw) if server.framing == "rtu" else tcp_settings(server, **kw)


@pytest.fixture(params=["tcp", "rtu"])
async def any_server_legacy(
    request: pytest.FixtureRequest, sim_clock: Monotonic
) -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer(SPEC, clock=sim_clock, framing=request.param, models=LEGACY_MODELS) as server:
        yield server
