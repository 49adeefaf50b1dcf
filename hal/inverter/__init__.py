"""Battery inverters behind one interface: SunSpec or register-table Modbus devices, or a simulator."""

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
from hal.inverter.battery import BatteryModel, BatterySpec
from hal.inverter.factory import connect_inverter, open_inverter
from hal.inverter.guard import SafeInverter
from hal.inverter.settings import InverterSettings, Nameplate

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
