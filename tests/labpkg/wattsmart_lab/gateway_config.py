"""The gateway configuration that points at a lab server and a simulated battery (demo, tests, bench)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml

from wattsmart_lab.server import LabServer


def lab_config(
    server: LabServer,
    modbus_port: int,
    state_dir: Path,
    *,
    client: str = "client",
    status_port: int = 0,
    **sections: Any,
) -> dict[str, Any]:
    """Config data for client certificate `client`; `sections` are merged over each section's keys."""
    certs = server.pki.client(client)
    data: dict[str, Any] = {
        "server": {
            "dcap_url": server.dcap_url,
            "ca_file": str(server.pki.ca.cert),
            "cert_file": str(certs.cert),
            "key_file": str(certs.key),
        },
        "inverter": {"transport": "tcp", "host": "127.0.0.1", "port": modbus_port},
        "gpio": {"backend": "none"},
        "status_page": {"host": "127.0.0.1", "port": status_port},
        "state_dir": str(state_dir),
    }
    for name, values in sections.items():
        current = data.get(name)
        data[name] = {**current, **values} if isinstance(current, dict) else values
    return data


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a status page the test opens)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_lab_config(path: Path, server: LabServer, modbus_port: int, state_dir: Path, **kwargs: Any) -> Path:
    """Write `lab_config(...)` as YAML to `path` and return the path."""
    text = "# Points the gateway at a lab 2030.5 server and a simulated battery on 127.0.0.1.\n"
    text += yaml.safe_dump(lab_config(server, modbus_port, state_dir, **kwargs), sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path
