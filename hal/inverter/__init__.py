"""Battery inverters behind one interface: SunSpec or register-table Modbus devices (or, in a
development install, the lab package's simulated battery)."""

from hal.errors import (
    ConfigurationError,
    HalError,
    InverterBusy,
    InverterProtocolError,
    InverterUnreachable,
    ModbusExceptionReply,
    NoPowerLimit,
    ProfileError,
    SetpointNotAccepted,
    TransientHardwareError,
)
from hal.inverter.base import BatteryInverter, ConnectionStatus, OperatingStatus, Ratings, Telemetry
from hal.inverter.battery import BatterySpec
from hal.inverter.factory import connect_inverter, open_inverter
from hal.inverter.guard import SafeInverter
from hal.inverter.settings import InverterSettings, Nameplate

__all__ = [
    "BatteryInverter",
    "BatterySpec",
    "ConfigurationError",
    "ConnectionStatus",
    "HalError",
    "InverterBusy",
    "InverterProtocolError",
    "InverterSettings",
    "InverterUnreachable",
    "ModbusExceptionReply",
    "Nameplate",
    "NoPowerLimit",
    "OperatingStatus",
    "ProfileError",
    "Ratings",
    "SafeInverter",
    "SetpointNotAccepted",
    "Telemetry",
    "TransientHardwareError",
    "connect_inverter",
    "open_inverter",
]
