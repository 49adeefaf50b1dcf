"""Modbus-backed inverters (SunSpec discovery or a register-table profile), chosen by settings."""

from __future__ import annotations

from hal.clock import Clock, utc_now
from hal.errors import ConfigurationError
from hal.inverter.base import BatteryInverter
from hal.inverter.settings import InverterSettings


async def connect_modbus_inverter(settings: InverterSettings, *, clock: Clock = utc_now) -> BatteryInverter:
    """Open the bus and build the profile's inverter (work in progress: SunSpec lands next)."""
    _ = clock
    raise ConfigurationError(f"transport {settings.transport!r} is not implemented yet")
