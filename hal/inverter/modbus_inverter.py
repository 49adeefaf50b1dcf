"""Modbus-backed inverters (SunSpec discovery or a register-table profile), chosen by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hal.clock import WallClock, utc_now
from hal.inverter.base import BatteryInverter
from hal.inverter.settings import SUNSPEC, InverterSettings
from hal.modbus import BusEndpoint, BusPool, BusSettings

if TYPE_CHECKING:
    from hal.meter import MeterRegister, SunSpecMeter, TableMeter

# One pool per process: every device on the same port or endpoint shares one connection.
_POOL = BusPool()


async def connect_modbus_inverter(
    settings: InverterSettings, *, wall_clock: WallClock = utc_now
) -> BatteryInverter:
    """Validate the profile, take the shared bus for its endpoint, and build the profile's inverter."""
    endpoint = settings.endpoint
    assert endpoint is not None  # InverterSettings guarantees it for rtu/tcp
    if settings.profile == SUNSPEC:
        from hal.inverter.sunspec import SunSpecInverter

        bus = _POOL.acquire(endpoint, settings.bus)
        return SunSpecInverter(bus, settings, wall_clock=wall_clock, on_close=lambda: _POOL.release(bus))
    from hal.inverter.table import TableInverter, load_profile

    profile = load_profile(settings.profile)  # raises ProfileError before any I/O
    bus = _POOL.acquire(endpoint, settings.bus)
    return TableInverter(bus, settings, profile, wall_clock=wall_clock, on_close=lambda: _POOL.release(bus))


def connect_meter(
    endpoint: BusEndpoint,
    bus: BusSettings,
    device_id: int,
    *,
    import_positive: bool = True,
    register: MeterRegister | None = None,
    wall_clock: WallClock = utc_now,
) -> SunSpecMeter | TableMeter:
    """The site meter at `device_id` on the shared bus at `endpoint` (the inverters' own connection):
    SunSpec, or with `register` the one register that holds its net power."""
    from hal.meter import SunSpecMeter, TableMeter

    shared = _POOL.acquire(endpoint, bus)

    async def release() -> None:
        await _POOL.release(shared)

    if register is not None:
        return TableMeter(
            shared,
            device_id,
            register,
            import_positive=import_positive,
            wall_clock=wall_clock,
            on_close=release,
        )
    return SunSpecMeter(
        shared, device_id, import_positive=import_positive, wall_clock=wall_clock, on_close=release
    )
