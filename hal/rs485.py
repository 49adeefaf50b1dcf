"""The kernel's RS-485 mode on a serial port: the UART driver switches the transceiver's direction.

Transceivers whose driver-enable pin hangs on the UART's RTS line need the kernel to raise RTS
while sending and drop it after the last stop bit (TIOCSRS485); auto-direction transceivers and
USB adapters need nothing (`inverter.serial.rs485` absent). The mode is set on the port before
the Modbus client opens it and read back, so a driver that cannot do it (a pty, a USB adapter
without the feature) is one clear error instead of a silent bus.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass

#: ioctls and flags of <linux/serial.h> / <asm-generic/ioctls.h>
TIOCGRS485 = 0x542E
TIOCSRS485 = 0x542F
SER_RS485_ENABLED = 1 << 0
SER_RS485_RTS_ON_SEND = 1 << 1
SER_RS485_RTS_AFTER_SEND = 1 << 2
SER_RS485_RX_DURING_TX = 1 << 4
#: struct serial_rs485: flags, delay_rts_before_send, delay_rts_after_send, 5 words of padding
_STRUCT = struct.Struct("=8I")


@dataclass(frozen=True)
class Rs485Settings:
    """How the UART drives RTS around a transmission (delays in milliseconds)."""

    rts_on_send: bool = True
    rts_after_send: bool = False
    delay_before_send_ms: int = 0
    delay_after_send_ms: int = 0
    rx_during_tx: bool = False

    def __post_init__(self) -> None:
        if self.rts_on_send == self.rts_after_send:
            raise ValueError("rts_on_send and rts_after_send must differ (RTS switches the direction)")
        for name in ("delay_before_send_ms", "delay_after_send_ms"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be within 0..100 ms, got {getattr(self, name)}")

    def flags(self) -> int:
        """The serial_rs485 flags word."""
        flags = SER_RS485_ENABLED
        flags |= SER_RS485_RTS_ON_SEND if self.rts_on_send else 0
        flags |= SER_RS485_RTS_AFTER_SEND if self.rts_after_send else 0
        flags |= SER_RS485_RX_DURING_TX if self.rx_during_tx else 0
        return flags


def pack(settings: Rs485Settings) -> bytes:
    """The struct serial_rs485 for `settings`."""
    before, after = settings.delay_before_send_ms, settings.delay_after_send_ms
    return _STRUCT.pack(settings.flags(), before, after, *[0] * 5)


def read_mode(fd: int) -> tuple[int, int, int]:
    """(flags, delay before, delay after) the driver holds now."""
    flags, before, after, *_ = _STRUCT.unpack(fcntl.ioctl(fd, TIOCGRS485, bytes(_STRUCT.size)))
    return flags, before, after


def apply(port: str, settings: Rs485Settings) -> tuple[int, int, int]:
    """Put `port` into RS-485 mode and return what the driver took (it may round the delays).

    Raises OSError with a reason naming the port when the driver has no RS-485 mode.
    """
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        try:
            fcntl.ioctl(fd, TIOCSRS485, pack(settings))
            taken = read_mode(fd)
        except OSError as exc:
            raise OSError(
                exc.errno, f"{port}: the serial driver has no kernel RS-485 mode ({exc.strerror})"
            ) from None
    finally:
        os.close(fd)
    wanted = settings.flags() & (SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND | SER_RS485_RTS_AFTER_SEND)
    if taken[0] & wanted != wanted:
        raise OSError(0, f"{port}: the driver did not take RS-485 mode (flags {taken[0]:#x})")
    return taken
