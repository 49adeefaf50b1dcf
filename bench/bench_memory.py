"""Where the gateway's resident memory goes: RSS growth as each part of the run path is imported.

One fresh interpreter imports the parts in dependency order (the system CA bundle pointed away and
frozenlist pure Python, as `wattsmart-gateway run` loads aiohttp) and reads VmRSS after each; the
last part, the status page's application, is what the page's first visit adds. The steady figure
of the running process is `bench_gateway`'s. Page-granular, so small parts may show 0.0.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

from bench.common import Row

#: (label, modules imported for it), in the order the run path needs them
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ssl", ("ssl",)),
    ("asyncio", ("asyncio",)),
    ("sqlite3", ("sqlite3",)),
    ("yaml", ("yaml",)),
    ("aiohttp (client)", ("aiohttp",)),
    ("pymodbus client", ("pymodbus.client",)),
    ("defusedxml", ("defusedxml.ElementTree",)),
    ("app.sep (2030.5 models + codec)", ("app.sep.types", "app.sep.codec")),
    ("app.config + hal", ("app.config", "hal.modbus", "hal.inverter.guard", "hal.gpio")),
    ("app.client", ("app.client.session",)),
    ("app.control", ("app.control.engine",)),
    ("app.telemetry + app.store", ("app.telemetry.service", "app.store")),
    ("app.identity", ("app.identity",)),
    ("app.commissioning", ("app.commissioning.status_page",)),
    ("app.gateway + supervisor + cli", ("app.cli", "app.supervisor", "app.gateway")),
    ("status page application (its first visit)", ("app.commissioning.web",)),
)

_PROBE = """
import importlib, json, os, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
out = [["interpreter", rss()]]
for label, modules in json.loads(sys.argv[1]):
    for m in modules:
        importlib.import_module(m)
    out.append([label, rss()])
out.append(["cryptography loaded", float("cryptography" in sys.modules)])
print(json.dumps(out))
"""


def run() -> list[Row]:
    """One row per part, then the total after import."""
    env = dict(os.environ, SSL_CERT_FILE=os.devnull, SSL_CERT_DIR=os.devnull, FROZENLIST_NO_EXTENSIONS="1")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(PARTS)], capture_output=True, text=True, check=True, env=env
    )
    readings = json.loads(done.stdout)
    crypto = readings.pop()[1]
    rows = [Row("memory: interpreter", readings[0][1], "MB", "RSS of a bare CPython")]
    for (_, before), (label, after) in itertools.pairwise(readings):
        rows.append(Row(f"memory: + {label}", after - before, "MB"))
    rows.append(
        Row(
            "memory: run path imported",
            readings[-2][1],
            "MB",
            f"cryptography {'LOADED' if crypto else 'not loaded'}; running: see 'gateway: steady RSS'",
        )
    )
    return rows
