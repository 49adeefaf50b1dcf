"""Shared test fixtures. Every test talks only to 127.0.0.1.

2030.5 end-to-end fixtures (mutual TLS over real loopback sockets):

- `pki` (session): a lab PKI from wattsmart_lab.pki; client certificates "client" (registered on the
  lab server by default), "other" (valid, not registered), "expired", and "foreign" (signed by
  `pki.other_ca`, which the server does not trust).
- `lab_server`: a started wattsmart_lab.server.LabServer; script it through `lab_server.tree`
  (controls, pollRates, time offset, renames) and the fault methods (`fail`, `slow`, `garbage`,
  `wrong_content_type`, `huge`, `down`/`up`); `lab_server.requests` records every request.
- `server_config`: an app.config.ServerConfig for the "client" certificate pointed at `lab_server`
  (short request timeout so failure tests stay fast).
- `config`: a whole app.config.Config around `server_config`, with state_dir in tmp_path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import Config, ServerConfig
from wattsmart_lab.pki import Pki, generate
from wattsmart_lab.server import LabServer


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away P-256 PKI shared by the whole test session."""
    return generate(
        tmp_path_factory.mktemp("pki"),
        clients=("client", "other"),
        expired=("expired",),
        foreign=("foreign",),
    )


@pytest.fixture
async def lab_server(pki: Pki) -> AsyncIterator[LabServer]:
    """A running lab 2030.5 server with the "client" certificate registered as an EndDevice."""
    async with LabServer(pki) as server:
        yield server


@pytest.fixture
def server_config(lab_server: LabServer) -> ServerConfig:
    """ServerConfig for the "client" certificate, pointed at `lab_server`."""
    return lab_server.client_config(request_timeout_s=2.0)


@pytest.fixture
def config(server_config: ServerConfig, tmp_path: Path) -> Config:
    """A Config whose server section points at `lab_server`; state lives in tmp_path."""
    return Config(server=server_config, state_dir=tmp_path / "state")
