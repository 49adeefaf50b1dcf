"""Two pseudo-terminals joined by copying bytes between their master ends: a null-modem cable.

The server opens one slave tty, the client the other; pausing the copy is a cable cut with real
timeouts, as on an RS-485 line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty


class PtyBridge:
    """A simulated serial cable between two /dev/pts devices."""

    def __init__(self) -> None:
        self._m1, self._s1 = os.openpty()
        self._m2, self._s2 = os.openpty()
        for fd in (self._m1, self._s1, self._m2, self._s2):
            tty.setraw(fd)
        self.server_port = os.ttyname(self._s1)
        self.client_port = os.ttyname(self._s2)
        self.connected = True

    def start(self) -> None:
        """Start copying in both directions on the running loop."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self._m1, self._copy, self._m1, self._m2)
        loop.add_reader(self._m2, self._copy, self._m2, self._m1)

    def _copy(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except OSError:
            return
        if self.connected and data:
            os.write(dst, data)

    def close(self) -> None:
        """Stop copying and close every descriptor."""
        loop = asyncio.get_running_loop()
        for fd in (self._m1, self._m2):
            loop.remove_reader(fd)
        for fd in (self._m1, self._s1, self._m2, self._s2):
            with contextlib.suppress(OSError):
                os.close(fd)
