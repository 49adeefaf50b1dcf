"""What the box loads: the gateway's run path brings no lab, simulator, signing code or `cryptography`.

Each check imports in a fresh interpreter (this test process has loaded everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: never on the running gateway's path: test/demo code, the fleet's tools, key making
RUN_PATH_FORBIDDEN = (
    "wattsmart_lab",  # the lab: 2030.5 lab server, PKI, demo, simulators (tests/labpkg)
    "wattsmart_release",  # the fleet's release tool (deploy/release)
    "app.ota.bundle",
    "app.ota.keys",
    "app.ota.updater",
    "app.identity.csr",
    "app.identity.verify",
    "app.commissioning.check",
    "cryptography",
    "qrcode",
    "pymodbus.server",  # pymodbus' Modbus server (and its web simulator): only the lab serves Modbus
    "app.ota.cli",  # the update commands' modules: loaded when an `update` command runs
    "app.identity.cli",
    "aiohttp.web",  # the status page's application: loaded by the page's first connection
    "app.commissioning.web",
)

#: pymodbus' simulator parts: `import pymodbus` itself loads some of them (its PDUs import the server
#: datastore, which imports the simulator's data types); the gateway must load no more than that
PYMODBUS_SIMULATOR = ("pymodbus.simulator", "pymodbus.datastore", "pymodbus.server")

#: what a pure module must not pull in: sockets, files, databases, the event loop, Modbus
IO_MODULES = ("asyncio", "socket", "ssl", "sqlite3", "aiohttp", "pymodbus", "serial", "yaml", "hal")


def _loaded_by(*modules: str, then: str = "") -> list[str]:
    """Modules loaded by a fresh interpreter after importing `modules` and running the code `then`."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        f"{then}\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def _under(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)]


#: the run path: `wattsmart-gateway run` is the CLI, then the supervisor, which imports the
#: composition root; the inverters a box builds (Modbus: SunSpec discovery or a register table)
RUN_PATH = ("app.cli", "app.supervisor", "app.gateway", "hal.inverter.sunspec", "hal.inverter.table")
#: what `wattsmart-gateway run` does before the gateway starts: parse its arguments with the whole CLI
#: (every subcommand's parser is built, so a command module that imports its work at the top would be
#: loaded here), then make the HTTP stack and the memory keeper ready
RUN_PATH_CODE = (
    "import app.cli, app.memory\n"
    "app.cli._parser().parse_args(['run', '--config', '/nonexistent.yaml'])\n"
    "app.cli.load_http_stack()\n"
)


def test_the_run_path_loads_only_what_runs() -> None:
    loaded = _loaded_by(*RUN_PATH, then=RUN_PATH_CODE)
    assert "app.gateway" in loaded and "app.commissioning.status_page" in loaded  # it sees the real graph
    assert "hal.inverter.factory" in loaded and "pymodbus.client" in loaded
    assert _under(loaded, RUN_PATH_FORBIDDEN) == []


def test_the_run_path_loads_no_more_of_pymodbus_simulator_than_pymodbus_itself() -> None:
    own = _under(_loaded_by("pymodbus"), PYMODBUS_SIMULATOR)
    assert _under(_loaded_by(*RUN_PATH, then=RUN_PATH_CODE), PYMODBUS_SIMULATOR) == own
    # and the check can see the difference: the lab's SunSpec server loads the rest
    assert set(_under(_loaded_by("wattsmart_lab.sunspec_server"), PYMODBUS_SIMULATOR)) > set(own)


@pytest.mark.parametrize("module", ["app.control.schedule", "app.sep.certificate", "app.store.files"])
def test_pure_modules_load_no_io(module: str) -> None:
    loaded = _loaded_by(module)
    assert module in loaded
    assert _under(loaded, IO_MODULES) == []


def test_the_forbidden_list_can_fail() -> None:
    """The same check on a command that does make keys: it must see `cryptography`."""
    loaded = _loaded_by("app.identity.csr")
    assert "cryptography" in _under(loaded, RUN_PATH_FORBIDDEN)


def test_an_update_command_does_load_the_updater() -> None:
    """The other side of the lazy CLI: running an os-* command's code path does bring the updater."""
    loaded = _loaded_by("app.ota.oscli", then="from app.ota.osupdate import OsUpdater")
    assert {"app.ota.updater", "cryptography"} <= set(_under(loaded, RUN_PATH_FORBIDDEN))


def test_the_gateway_loads_aiohttp_without_the_system_trust_store_or_libstdcxx() -> None:
    code = (
        "import os, json\n"
        "from app.cli import load_http_stack\n"
        "os.environ['SSL_CERT_DIR'] = '/etc/ssl/certs'\n"
        "os.environ.pop('SSL_CERT_FILE', None)\n"
        "load_http_stack()\n"
        "import aiohttp.connector as c\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(json.dumps([c._SSL_CONTEXT_VERIFIED.cert_store_stats()['x509_ca'],\n"
        "                  os.environ.get('SSL_CERT_DIR'), os.environ.get('SSL_CERT_FILE'),\n"
        "                  os.environ.get('FROZENLIST_NO_EXTENSIONS'), 'libstdc++' in maps]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # no roots parsed, no C++ runtime mapped; the environment restored
    assert json.loads(out.stdout) == [0, "/etc/ssl/certs", None, None, False]
    # and the check can fail: a plain import of aiohttp maps the C++ runtime through frozenlist
    plain = "import aiohttp; print('libstdc++' in open('/proc/self/maps').read())"
    mapped = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, check=True)
    assert mapped.stdout.strip() == "True"
