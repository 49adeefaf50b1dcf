"""Runs INSIDE the image under `make image-test-ab` (qemu virt), as root, at every boot of a slot.

`image/test/ab_test.py` adds this file, `guest_lab.py`, the lab package (`wattsmart_lab/`, not in
the box's wheel) and `wattsmart-ab-test.service` to each root slot of a copy of the image, and
attaches a second disk (ext4, label WSGSTICK) holding the OS bundle and `scenario.json`. The unit is
Type=notify, before the gateway and the OS update unit. Progress across boots and slots is kept on
the data partition (`ab-test/`), which every slot mounts.

Every boot: the battery simulator on 127.0.0.1:5020, a small HTTP endpoint on 127.0.0.1:8099 for
the update reports, READY=1; then, by what the boot finds:

- first boot (slot A, no update yet): a test identity, gateway.yaml and the 2030.5 lab until the
  gateway has posted a reading; then the utility server goes away for good (the readings wait in
  the outbox, which only grows, so it can be checked row by row); stops the gateway and records
  its outbox, installs the bundle from the stick
  with the real CLI (`python -m app.ota os-install`), and reboots;
- a later boot: compares the outbox with that record before the gateway starts, waits for
  `wattsmart-os-update.service` to finish (commit, or mark-bad and reboot), then checks the slot,
  the outcome, its report and the configuration carried across, prints RESULT and powers off.

Each step is a `WSG-IMAGE-TEST:` line on the serial console.
"""

# ruff: noqa: S603, S607, ASYNC221, ASYNC240  (fixed system tools; a one-shot script, blocking is fine)

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guest_lab as lab
from guest_lab import say, sh, uptime

DATA = Path("/var/lib/wattsmart-gateway")
PROGRESS = DATA / "ab-test"
STICK = Path("/run/wsg-stick")
REPORT_PORT = 8099
OS_UNIT = "wattsmart-os-update.service"
#: the trial's clock for this test: READY within 150 s of the slot's boot, then 30 s healthy
OTA_SECTION = f"""ota:
  ready_timeout_s: 150
  healthy_for_s: 30
  probe_interval_s: 2
  report_url: http://127.0.0.1:{REPORT_PORT}/report
"""


def load(name: str) -> Any:
    try:
        return json.loads((PROGRESS / name).read_text())
    except (OSError, ValueError):
        return None


def save(name: str, value: Any) -> None:
    PROGRESS.mkdir(parents=True, exist_ok=True)
    (PROGRESS / name).write_text(json.dumps(value, indent=1))
    os.sync()


def booted_slot() -> str:
    text = Path("/run/wattsmart-ab/booted").read_text() if Path("/run/wattsmart-ab/booted").exists() else ""
    return text.strip().partition("=")[2] or "?"


def outbox_rows(limit_tick: int | None = None) -> tuple[int, int, str]:
    """(rows, newest tick, sha256 of the rows up to `limit_tick`) of the gateway's outbox, read-only."""
    db = DATA / "gateway.sqlite"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT tick, point, value, quality FROM reading ORDER BY tick, point").fetchall()
    finally:
        con.close()
    newest = max((r[0] for r in rows), default=0)
    upto = newest if limit_tick is None else limit_tick
    digest = hashlib.sha256(repr([r for r in rows if r[0] <= upto]).encode()).hexdigest()
    return len(rows), newest, digest


def os_status() -> dict[str, Any]:
    out = sh("/opt/wattsmart-gateway/current/bin/python", "-m", "app.ota", "os-status")
    try:
        return dict(json.loads(out))
    except ValueError:
        return {"raw": out}


def mount_stick() -> dict[str, Any]:
    STICK.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(STICK):
        subprocess.run(["mount", "-o", "ro", "LABEL=WSGSTICK", str(STICK)], check=True)
    return dict(json.loads((STICK / "scenario.json").read_text()))


def boot_facts() -> dict[str, Any]:
    ab = Path("/boot/firmware/wattsmart-ab.env")
    cmdline = Path("/boot/firmware/cmdline.txt")
    return {
        "slot": booted_slot(),
        "root": sh("findmnt", "-n", "-o", "SOURCE", "/"),
        "boot_mounted": os.path.ismount("/boot/firmware"),
        "ab_env": ab.read_text().replace("\n", " ").strip() if ab.exists() else None,
        "cmdline_txt_root": next(
            (w for w in (cmdline.read_text().split() if cmdline.exists() else []) if w.startswith("root=")),
            None,
        ),
        "release": os.readlink("/opt/wattsmart-gateway/current"),
        "kernel_to_userspace_s": round(uptime(), 1),
    }


async def wait_ready(deadline_s: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        props = lab.unit_props("ActiveState", "ActiveEnterTimestampMonotonic")
        if props.get("ActiveState") == "active":
            return int(props.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
        await asyncio.sleep(1)
    return None


async def first_boot(scenario: dict[str, Any], boots: list[dict[str, Any]]) -> str | None:
    from wattsmart_lab import pki as pki_mod
    from wattsmart_lab.server import LabServer

    pki = pki_mod.generate(Path("/run/wattsmart-lab/pki"), ("client",))
    lab.install_identity(pki)
    server = LabServer(pki, host="127.0.0.1", port=lab.SEP_PORT)
    await server.start()
    lab.CONFIG.write_text(lab.config_text(server.dcap_url) + OTA_SECTION)
    say(f"first boot: identity, gateway.yaml and the 2030.5 lab at {server.dcap_url}")
    import sdnotify

    sdnotify.SystemdNotifier().notify("READY=1")
    ready = await wait_ready(300)
    if ready is None:
        return "the gateway did not reach READY on slot A"
    boots[-1]["ready_s"] = round(ready, 1)
    say(f"READY on slot A at {ready:.1f}s after kernel start")
    for _ in range(90):
        if server.tree.readings:
            break
        await asyncio.sleep(2)
    say(f"the gateway posted {len(server.tree.readings)} reading(s); the utility server goes away for good")
    await server.stop()
    # from now on the readings wait in the outbox (the gateway keeps the links it saw): on every
    # later boot too, so the rows recorded here can be compared before the gateway starts
    await asyncio.sleep(45)
    sh("systemctl", "stop", lab.UNIT)
    rows, newest, digest = outbox_rows()
    save("outbox.json", {"rows": rows, "tick": newest, "sha256": digest})
    say(f"OUTBOX before the update (gateway stopped): {rows} rows up to tick {newest}, sha256 {digest[:16]}")
    if rows == 0:
        return "the gateway left no outbox rows to follow across the update"
    bundle = STICK / scenario["bundle"]
    say(f"INSTALL {bundle.name} ({bundle.stat().st_size} bytes) into slot B: python -m app.ota os-install")
    t0 = time.monotonic()
    res = subprocess.run(
        [
            "/opt/wattsmart-gateway/current/bin/python",
            "-m",
            "app.ota",
            "os-install",
            str(bundle),
            "--no-reboot",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - t0
    for line in (res.stdout + res.stderr).splitlines()[-30:]:
        say(f"os-install: {line}")
    boots[-1]["install_s"] = round(took, 1)
    say(
        f"INSTALLED in {took:.1f} s (exit {res.returncode}); "
        f"rauc: {sh('rauc', 'status').replace(chr(10), ' | ')[:600]}"
    )
    if res.returncode != 0:
        return f"os-install failed (exit {res.returncode})"
    status = os_status()
    say(f"OS STATE after install: phase {status.get('phase')}, target {status.get('target')}")
    if status.get("phase") != "trial":
        return f"after the install the OS state is {status.get('phase')}, not trial"
    save("boots.json", boots)
    say("REBOOT into slot B")
    subprocess.run(["systemctl", "reboot"], check=False)
    await asyncio.sleep(600)
    return "the reboot did not happen"


async def later_boot(scenario: dict[str, Any], boots: list[dict[str, Any]], reports: list[Any]) -> str | None:
    import sdnotify

    # before the gateway starts (this unit is ordered before it): the outbox as the last boot left it
    before = load("outbox.json") or {}
    rows, newest, digest = outbox_rows(before.get("tick"))
    intact = digest == before.get("sha256") and rows >= int(before.get("rows") or 1)
    boots[-1]["outbox_intact"] = intact
    say(
        f"OUTBOX at this boot, before the gateway starts: {rows} rows up to tick {newest}; the "
        f"{before.get('rows')} rows up to tick {before.get('tick')} recorded before the update are "
        f"{'intact' if intact else 'CHANGED'}"
    )
    sdnotify.SystemdNotifier().notify("READY=1")
    slot = booted_slot()
    if not lab.CONFIG.exists() or "ready_timeout_s: 150" not in lab.CONFIG.read_text():
        return f"slot {slot} has no gateway.yaml from slot A (not carried)"
    ready = await wait_ready(200 if scenario["name"] == "good" else 30)
    boots[-1]["ready_s"] = round(ready, 1) if ready is not None else None
    save("boots.json", boots)
    say(
        f"slot {slot}: gateway READY at {ready}s after kernel start"
        if ready
        else f"slot {slot}: gateway not READY"
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < 600:
        props = sh("systemctl", "show", OS_UNIT, "-p", "ActiveState", "--value")
        if props in ("inactive", "failed"):
            break
        await asyncio.sleep(2)
    status = os_status()
    last = status.get("last") or {}
    boots[-1]["os_done_s"] = round(uptime(), 1)
    save("boots.json", boots)
    say(f"OS STATE: phase {status.get('phase')}, last {json.dumps(last)}")
    if status.get("phase") == "rolling_back":
        say("slot marked bad: the OS updater reboots into the old slot")
        await asyncio.sleep(600)
        return "the rollback reboot did not happen"
    want_slot, want_result = ("B", "committed") if scenario["name"] == "good" else ("A", "rolled_back")
    problems = []
    if slot != want_slot:
        problems.append(f"booted slot {slot}, expected {want_slot}")
    if last.get("result") != want_result:
        problems.append(f"outcome {last.get('result')}, expected {want_result}")
    await asyncio.sleep(3)
    os_reports = [r for r in reports if isinstance(r, dict) and r.get("kind") == "os"]
    say(f"REPORTS received at the report_url: {json.dumps(os_reports)[:800]}")
    if not any(r.get("result") == want_result for r in os_reports):
        problems.append(f"no {want_result} report reached report_url")
    if not all(b.get("outbox_intact", True) for b in boots):
        problems.append("outbox rows changed across a slot switch")
    ab = sh("rauc", "status", "--output-format=json")
    say(f"RAUC {ab[:700]}")
    say("SUMMARY " + json.dumps({"scenario": scenario["name"], "boots": boots, "outcome": last}))
    return "; ".join(problems) or None


async def main() -> int:
    say(f"A/B test boot: {json.dumps(boot_facts())}")
    from aiohttp import web

    from wattsmart_lab.sunspec_server import SunSpecServer

    reports: list[Any] = []

    async def report(request: web.Request) -> web.Response:
        reports.append(await request.json())
        say(f"REPORT received: {json.dumps(reports[-1])}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/report", report)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", REPORT_PORT).start()
    sim = SunSpecServer(host="127.0.0.1", port=lab.MODBUS_PORT)
    await sim.start()
    if not os.path.ismount("/boot/firmware"):
        say(f"BOOT PARTITION NOT MOUNTED: by-label {sorted(os.listdir('/dev/disk/by-label'))}")
        for line in sh("systemctl", "status", "boot-firmware.mount", "--no-pager", "-n", "5").splitlines()[
            :12
        ]:
            say(f"UNIT {line}")
    scenario = mount_stick()
    boots = load("boots.json") or []
    boots.append({"n": len(boots) + 1, **boot_facts()})
    save("boots.json", boots)
    if len(boots) == 1:
        problem = await first_boot(scenario, boots)
    else:
        problem = await later_boot(scenario, boots, reports)
    say("RESULT PASS" if problem is None else f"RESULT FAIL {problem}")
    await sim.stop()
    await runner.cleanup()
    return 0 if problem is None else 1


if __name__ == "__main__":
    try:
        code = asyncio.run(main())
    except Exception:
        for line in traceback.format_exc().splitlines():
            say(f"ERROR {line}")
        say("RESULT FAIL the A/B test script crashed")
        code = 2
    subprocess.run(["systemctl", "--no-block", "poweroff"], check=False)
    sys.exit(code)
