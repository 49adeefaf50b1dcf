"""Battery inverters behind one interface: SunSpec or register-table Modbus devices, or a simulator."""

from hal.errors import (
    ConfigurationError,
    HalError,
    InverterBusy,
    InverterProtocolError,
    InverterUnreachable,
    ModbusExceptionReply,
    ProfileError,
    SetpointNotAccepted,
    TransientHardwareError,
)
from hal.inverter.base import BatteryInverter, ConnectionStatus, OperatingStatus, Ratings, Telemetry
from hal.inverter.battery import BatteryModel, BatterySpec
from hal.inverter.factory import connect_inverter, open_inverter
from hal.inverter.settings import InverterSettings

__all__ = [
    "BatteryInverter",
    "BatteryModel",
    "BatterySpec",
    "ConfigurationError",
    "ConnectionStatus",
    "HalError",
    "InverterBusy",
    "InverterProtocolError",
    "InverterSettings",
    "InverterUnreachable",
    "ModbusExceptionReply",
    "OperatingStatus",
    "ProfileError",
    "Ratings",
    "SetpointNotAccepted",
    "Telemetry",
    "TransientHardwareError",
    "connect_inverter",
    "open_inverter",
]
