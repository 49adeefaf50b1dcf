"""Runs INSIDE the image under test (qemu-system-aarch64 -M virt), as root, with the release's Python.

`make image-test` adds this file and `wattsmart-image-test.service` to a copy of the image. The
service is Type=notify and ordered before wattsmart-gateway.service, so the real gateway unit
starts (once, at boot, as in the field) against a lab that lives entirely on the guest's loopback:

1. a throw-away PKI (app.lab.pki), the box's certificate and key put where the config points;
2. the SunSpec battery simulator (hal.inverter.sunspec_server) on 127.0.0.1:5020 (Modbus TCP);
3. the 2030.5 lab server (app.lab.server) on 127.0.0.1:8443 (mutual TLS) with this box registered
   as an EndDevice and one DERControl in force (charge at -50 % of WMax for 15 minutes);
4. /etc/wattsmart-gateway/gateway.yaml pointing at both, GPIO on the fake backend;

then READY=1 to systemd, and it watches: the gateway reaches READY (unit active), it GETs its
EndDevice, the control reaches the battery (setpoint written, DERControlResponse "started"), a
reading is posted to its MirrorUsagePoint; /api/status answers. Each milestone and the final
RESULT are printed as `WSG-IMAGE-TEST:` lines on the serial console, then the guest powers off.
"""

# ruff: noqa: S603, S607, ASYNC240  (fixed system tools; a one-shot script, blocking is fine)

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any

MARK = "WSG-IMAGE-TEST:"
LAB = Path("/run/wattsmart-lab")
#: outside the managed identity folder (…/identity, generations made by `identity init/install`):
#: the gateway then uses these files as they are ("external" identity)
IDENTITY = Path("/var/lib/wattsmart-gateway/lab-identity")
CONFIG = Path("/etc/wattsmart-gateway/gateway.yaml")
UNIT = "wattsmart-gateway.service"
MODBUS_PORT = 5020
SEP_PORT = 8443
STATUS_URL = "http://127.0.0.1:8080/api/status"
#: the image's data partition is 128 MiB; boot_test.py hands the guest a card 256 MiB larger
DATA_GROWN_MIB = 300
DEADLINE_S = float(os.environ.get("WSG_TEST_DEADLINE_S", "420"))


def uptime() -> float:
    """Seconds since the kernel started (CLOCK_BOOTTIME)."""
    return float(Path("/proc/uptime").read_text().split()[0])


def say(text: str) -> None:
    """One report line on the serial console (and the journal)."""
    line = f"{MARK} [{uptime():7.1f}s] {text}"
    print(line, flush=True)
    with contextlib.suppress(OSError), open("/dev/console", "w") as console:
        console.write(line + "\n")


def sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()


def unit_props(*names: str) -> dict[str, str]:
    out = sh("systemctl", "show", UNIT, "-p", ",".join(names))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def config_text(dcap_url: str, identity: Path = IDENTITY) -> str:
    """The gateway's configuration for the lab: everything on 127.0.0.1, GPIO faked."""
    return f"""# written by the image test (guest_lab.py): everything on 127.0.0.1
server:
  dcap_url: {dcap_url}
  ca_file: {identity}/ca.pem
  cert_file: {identity}/client.pem
  key_file: {identity}/client.key
  default_poll_rate_s: 30
inverter:
  transport: tcp
  host: 127.0.0.1
  port: {MODBUS_PORT}
  unit_id: 1
telemetry:
  interval_s: 5
  default_post_rate_s: 15
  status_interval_s: 15
gpio:
  backend: fake
status_page:
  enabled: true
  host: 127.0.0.1
  port: 8080
log_level: INFO
"""


def write_config(dcap_url: str) -> None:
    CONFIG.write_text(config_text(dcap_url))
    gw = pwd.getpwnam("wattsmart-gateway")
    os.chown(CONFIG, 0, gw.pw_gid)
    CONFIG.chmod(0o640)


def install_identity(pki: Any) -> None:
    gw = pwd.getpwnam("wattsmart-gateway")
    IDENTITY.mkdir(parents=True, exist_ok=True)
    IDENTITY.chmod(0o700)
    os.chown(IDENTITY, gw.pw_uid, gw.pw_gid)
    client = pki.client("client")
    for src, name, mode in ((pki.ca.cert, "ca.pem", 0o644), (client.cert, "client.pem", 0o644)):
        shutil.copyfile(src, IDENTITY / name)
        (IDENTITY / name).chmod(mode)
        os.chown(IDENTITY / name, gw.pw_uid, gw.pw_gid)
    shutil.copyfile(client.key, IDENTITY / "client.key")
    (IDENTITY / "client.key").chmod(0o600)
    os.chown(IDENTITY / "client.key", gw.pw_uid, gw.pw_gid)


def fetch_status() -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(STATUS_URL, timeout=5) as resp:
            data = json.loads(resp.read())
            return data if isinstance(data, dict) else {"value": data}
    except (OSError, ValueError):
        return None


def system_facts() -> dict[str, str]:
    """What the image promises, seen from inside the booted guest."""
    facts = {
        "data_mount": sh("findmnt", "-n", "-o", "SOURCE,FSTYPE,SIZE,OPTIONS", "/var/lib/wattsmart-gateway"),
        "root_mount": sh("findmnt", "-n", "-o", "SOURCE,FSTYPE", "/"),
        "boot_mount": sh("findmnt", "-n", "-o", "SOURCE,FSTYPE", "/boot/firmware"),
        "root_password": [*sh("passwd", "--status", "root").split(), "?", "?"][1],  # L = locked
        "ssh": f"{sh('systemctl', 'is-enabled', 'ssh.service') or 'absent'}, "
        f"{sh('systemctl', 'is-active', 'ssh.service')}, host keys: "
        f"{len(list(Path('/etc/ssh').glob('ssh_host_*_key')))}",
        "machine_id": "set" if len(Path("/etc/machine-id").read_text().strip()) == 32 else "unset",
        "failed_units": sh("systemctl", "--failed", "--plain", "--no-legend").replace("\n", "; "),
        "release": os.readlink("/opt/wattsmart-gateway/current"),
        "gateway_user": sh("ps", "-o", "user=", "-p", unit_props("MainPID").get("MainPID", "0")),
    }
    return facts


async def main() -> int:
    say(f"lab starting (python {sys.version.split()[0]}, {os.uname().machine})")
    from app.lab import pki as pki_mod
    from app.lab.server import LabServer
    from hal.inverter.sunspec_server import SunSpecServer

    LAB.mkdir(parents=True, exist_ok=True)
    pki = pki_mod.generate(LAB / "pki", ("client",))
    install_identity(pki)
    sim = SunSpecServer(host="127.0.0.1", port=MODBUS_PORT)
    await sim.start()
    lab = LabServer(pki, host="127.0.0.1", port=SEP_PORT)
    await lab.start()
    lfdi = lab.lfdi_of(pki.client("client"))
    now = lab.tree.now()
    control = lab.tree.add_control(1, start=now - dt.timedelta(seconds=5), duration=900, fixed_w=-5000)
    write_config(lab.dcap_url)
    say(f"lab up: 2030.5 {lab.dcap_url}, SunSpec 127.0.0.1:{MODBUS_PORT}, control {control.mRID} fixedW=-50%")

    import sdnotify

    sdnotify.SystemdNotifier().notify("READY=1")

    got: dict[str, float] = {}
    details: dict[str, Any] = {"lfdi": lfdi}
    start = time.monotonic()
    last_state = ""
    waited = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        await asyncio.sleep(1.0)
        props = unit_props(
            "ActiveState", "SubState", "NRestarts", "ExecMainStartTimestampMonotonic",
            "ActiveEnterTimestampMonotonic", "StatusText", "Result",
        )  # fmt: skip
        state = f"{props.get('ActiveState')}/{props.get('SubState')} restarts={props.get('NRestarts')}"
        if state != last_state:
            say(f"gateway unit: {state} status={props.get('StatusText', '')!r}")
            last_state = state
            waited = time.monotonic()
        elif "ready" not in got and time.monotonic() - waited > 30:
            waited = time.monotonic()  # still not started: show what systemd is waiting for
            jobs = sh("systemctl", "list-jobs", "--no-legend", "--no-pager").splitlines()
            for line in jobs[:12] or ["(no jobs queued)"]:
                say(f"JOB {line}")
            status = sh("systemctl", "status", UNIT, "--no-pager", "-n", "8", "-l")
            for line in status.splitlines()[:20]:
                say(f"UNIT {line}")
            warnings = sh("journalctl", "-b", "-p", "warning", "--no-pager", "-o", "cat", "-n", "25")
            for line in warnings.splitlines():
                say(f"WARN {line}")
        if "ready" not in got and props.get("ActiveState") == "active":
            ready_us = int(props.get("ActiveEnterTimestampMonotonic") or 0)
            start_us = int(props.get("ExecMainStartTimestampMonotonic") or 0)
            got["ready"] = ready_us / 1e6 if ready_us else uptime()
            details["gateway_start_s"] = round(start_us / 1e6, 1)
            details["start_to_ready_s"] = round((ready_us - start_us) / 1e6, 1)
            say(
                f"READY: gateway active (READY=1) at {got['ready']:.1f}s after kernel start, "
                f"{details['start_to_ready_s']}s after its process started"
            )
        if "ready" in got and "status" not in got:
            status = fetch_status()
            if status is not None:
                got["status"] = uptime()
                details["status"] = status
                say("STATUS /api/status: " + json.dumps(status, separators=(",", ":"), default=str)[:1500])
        mine = [r for r in lab.requests if r.lfdi == lfdi]
        if "enddevice" not in got:
            edev = [r for r in mine if (lab.tree.canonical(r.path) or r.path).startswith("/edev")]
            if edev:
                got["enddevice"] = uptime()
                details["enddevice_requests"] = sorted({r.path for r in edev})
                paths = ", ".join(details["enddevice_requests"][:4])
                say(f"ENDDEVICE: discovered ({len(edev)} requests: {paths})")
        if "control" not in got:
            target = sim.device.battery.target_w
            started = [r for r in lab.tree.responses if _status(r) == 2 and _subject(r) == control.mRID]
            if target is not None and target < 0:
                got["control"] = uptime()
                details["setpoint_w"] = target
                details["responses"] = [_status(r) for r in lab.tree.responses]
                say(
                    f"CONTROL: applied, battery setpoint {target:.0f} W "
                    f"({len(sim.device.writes)} register writes; responses {details['responses']}"
                    f"{', started acknowledged' if started else ''})"
                )
        if "reading" not in got and lab.tree.readings:
            got["reading"] = uptime()
            details["readings"] = len(lab.tree.readings)
            n, mups = len(lab.tree.readings), len(lab.tree.mups)
            say(f"READING: {n} reading(s) posted to {mups} MirrorUsagePoint(s)")
        if {"ready", "status", "enddevice", "control", "reading"} <= got.keys():
            break
        if props.get("ActiveState") == "failed":
            break

    data_bytes = os.statvfs("/var/lib/wattsmart-gateway")
    data_mib = data_bytes.f_blocks * data_bytes.f_frsize >> 20
    if data_mib > DATA_GROWN_MIB:
        got["data_grown"] = uptime()
    say(f"DATA: /var/lib/wattsmart-gateway is {data_mib} MiB (image: 128 MiB, card copy: +256 MiB)")
    facts = system_facts()
    for key, value in facts.items():
        say(f"FACT {key}: {value}")
    wanted = ("ready", "status", "enddevice", "control", "reading", "data_grown")
    missing = [m for m in wanted if m not in got]
    summary = {
        "milestones_s": {k: round(v, 1) for k, v in got.items()},
        "missing": missing,
        "report_at_s": round(uptime(), 1),
        **{k: v for k, v in details.items() if k != "status"},
    }
    if missing:
        journal = sh("journalctl", "-u", UNIT, "-n", "25", "--no-pager", "-o", "cat")
        for line in journal.splitlines():
            say(f"JOURNAL {line}")
    say("SUMMARY " + json.dumps(summary, separators=(",", ":"), default=str))
    say("RESULT PASS" if not missing else f"RESULT FAIL missing: {', '.join(missing)}")
    await lab.stop()
    await sim.stop()
    return 0 if not missing else 1


def _subject(response: object) -> str | None:
    subject = getattr(response, "subject", None)
    if isinstance(subject, bytes):
        return subject.hex().upper()
    return str(subject).upper() if subject else None


def _status(response: object) -> int | None:
    status = getattr(response, "status", None)
    return int(status) if status is not None else None


if __name__ == "__main__":
    try:
        code = asyncio.run(main())
    except Exception:  # the harness must see why, on the console
        for line in traceback.format_exc().splitlines():
            say(f"ERROR {line}")
        say("RESULT FAIL the lab script crashed")
        code = 2
    if os.environ.get("WSG_TEST_POWEROFF", "1") == "1":
        subprocess.run(["systemctl", "--no-block", "poweroff"], check=False)
    sys.exit(code)
