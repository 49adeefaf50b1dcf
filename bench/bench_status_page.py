"""The status page's cost at 24 h of 30-s samples: RSS of the history ring, RSS of rendering the page and
/api/history from it (peak over repeated renders), render time and bytes served. Target: < 2 MB RSS.

Measured in a fresh interpreter so that nothing else's allocations blur the figure: RSS (VmRSS / VmHWM
from /proc) after importing everything, after filling the ring, and after 20 renders.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import Row

_PROBE = r"""
import gc, json, math, time
from pathlib import Path
from zoneinfo import ZoneInfo

# what the gateway loaded before this page: the old page's aiohttp.web and html included
import aiohttp.web, html, app.client.session, app.commissioning.panel, app.control.engine, app.identity
import app.sep.der, hal.gpio

def kib(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0

gc.collect()
before_import = kib("VmRSS")
from app.commissioning.history import CAPACITY, History, Sample
from app.commissioning.page import ChartCache, render_page
import app.commissioning.status_page, app.commissioning.zone

status = {
    "state": "ok", "led": "OK",
    "identity": {"LFDI": "3e4f" * 10, "SFDI": 167261211391, "expires": "2027-07-01 12:00 UTC"},
    "server": {"connected": True, "registered": True, "last read": "2026-07-01T11:59:30+00:00"},
    "control": {"setpoint W": 3000.0, "events": [{"mRID": "A" * 32, "phase": "active", "description": "peak",
        "program": "p", "action": "discharge 3,000 W", "start": "2026-07-01T11:00:00+00:00",
        "end": "2026-07-01T13:00:00+00:00"}]},
    "inverter": {"power W": 2900.0, "frequency Hz": 50.0, "state of charge %": 61.0},
    "telemetry": {"last post power": "2026-07-01T11:59:30+00:00", "waiting power": 0, "dropped": 0},
    "problems": {"current": None, "recent": []},
}
now = 1_782_907_200.0
def wchar():
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0

gc.collect()
base = kib("VmRSS")
written = wchar()
ring = History()
for i in range(CAPACITY):
    t = now - (CAPACITY - 1 - i) * 30
    event = i % 600 < 120
    power, soc = 2500 * math.sin(i / 90), 50 + 40 * math.sin(i / 400)
    ring.record(Sample(t, power, 3000.0 if event else None, soc, i % 50, i % 50 == 0, i % 700 > 60, event))
gc.collect()
filled = kib("VmRSS")
zone = ZoneInfo("Europe/Berlin")
started = time.perf_counter()
for _ in range(20):
    page = render_page(status, ChartCache(ring, zone).html(now), now, zone)
    api = ring.to_json_text(now, 24)
elapsed = (time.perf_counter() - started) / 20
cache = ChartCache(ring, zone)
cache.html(now)
started = time.perf_counter()
for _ in range(20):
    render_page(status, cache.html(now), now, zone)
view = (time.perf_counter() - started) / 20
written = wchar() - written
gc.collect()
figures = {"written": written, "import": base - before_import, "base": base, "ring": filled - base}
figures.update(peak=kib("VmHWM") - base, after=kib("VmRSS") - base)
figures.update(ms=elapsed * 1000, view_ms=view * 1000, page=len(page.encode()), api=len(api.encode()))
figures.update(n=len(ring), nbytes=ring.nbytes)
print(json.dumps(figures))
"""


def run() -> list[Row]:
    """The rows of this benchmark."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True, timeout=120
    )
    m = json.loads(out.stdout)
    return [
        Row("status page: history ring RSS at 24 h", m["ring"] / 1024, "MiB", f"{m['n']} samples of 30 s"),
        Row("status page: history ring arrays", m["nbytes"] / 1024, "KiB", "preallocated, never grows"),
        Row(
            "status page: its modules' import RSS",
            m["import"] / 1024,
            "MiB",
            "ours and qrcode, beyond the old page's",
        ),
        Row("status page: ring + page + /api/history peak RSS", m["peak"] / 1024, "MiB", "over 20 views"),
        Row("status page: RSS after those views", m["after"] / 1024, "MiB", "steady"),
        Row(
            "status page: import + ring + views, peak RSS",
            (m["import"] + m["peak"]) / 1024,
            "MiB",
            "target < 2 MB at 24 h of 30-s samples",
        ),
        Row(
            "status page: draw charts + page + /api/history",
            m["ms"],
            "ms",
            "24 h of samples, on this machine",
        ),
        Row(
            "status page: one view with the charts drawn",
            m["view_ms"],
            "ms",
            "charts drawn once per 30-s sample",
        ),
        Row("status page: bytes written for a day of samples and the views", m["written"], "B", "no flash"),
        Row("status page: page size at 24 h", m["page"] / 1024, "KiB", "refreshed every 5 s"),
        Row("status page: /api/history?hours=24 size", m["api"] / 1024, "KiB", "bounded by the ring"),
    ]
