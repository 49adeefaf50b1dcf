"""Fixtures for whole-gateway tests: the SunSpec battery simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wattsmart_lab.sunspec_server import SunSpecServer


@pytest.fixture
async def battery() -> AsyncIterator[SunSpecServer]:
    """The simulated SunSpec battery on Modbus TCP."""
    async with SunSpecServer() as server:
        yield server
