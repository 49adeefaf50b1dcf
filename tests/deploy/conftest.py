"""The booted nspawn box, shared by the slow suites (test_systemd_boot.py, then test_systemd_ota.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.gatewaybox import Box, booted_box


@pytest.fixture(scope="session")
def box() -> Iterator[Box]:
    with booted_box() as booted:
        yield booted
