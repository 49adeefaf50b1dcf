"""Fixtures for whole-gateway tests: the SunSpec battery simulator and free ports on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from wattsmart_lab.sunspec_server import SunSpecServer


@pytest.fixture
async def battery() -> AsyncIterator[SunSpecServer]:
    """The simulated SunSpec battery on Modbus TCP."""
    async with SunSpecServer() as server:
        yield server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
