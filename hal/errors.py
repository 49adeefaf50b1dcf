"""One error hierarchy for the hardware layer; each leaf's name says how the caller recovers."""

from __future__ import annotations


class HalError(Exception):
    """Base of every error the hardware layer raises."""


class TransientHardwareError(HalError):
    """Retry later: the device or the link is expected to come back by itself."""


class InverterUnreachable(TransientHardwareError):
    """No reply, a cut link or a port that cannot be opened; retry with backoff, treat readings as unknown."""


class InverterBusy(TransientHardwareError):
    """The device answered "busy" (Modbus exception 5 or 6); retry shortly."""


class InverterProtocolError(HalError):
    """The device answered, but not as its map says it should; log, treat as unknown, and retry rarely."""


class ModbusExceptionReply(InverterProtocolError):
    """The device returned a Modbus exception response."""

    def __init__(self, code: int, address: int, message: str = "") -> None:
        self.code = code
        self.address = address
        super().__init__(message or f"Modbus exception {code} at address {address}")


class SetpointNotAccepted(InverterProtocolError):
    """A setpoint was written but the read-back differs; the device ignored or changed the command."""


class NoPowerLimit(HalError):
    """No plausible inverter rating and no configured nameplate bound this direction: nothing is written."""


class ConfigurationError(HalError):
    """Reconfigure: settings do not describe hardware that can work; retrying will not help."""


class ProfileError(ConfigurationError):
    """A device profile is invalid, or the device does not expose what the profile needs."""
