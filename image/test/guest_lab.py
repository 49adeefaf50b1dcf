"""Runs INSIDE the image under test (qemu-system-aarch64 -M virt or -M raspi3b), as root.

`make image-test` adds this file, a copy of the lab package beside it (`wattsmart_lab/`: not in
the box's wheel) and `wattsmart-image-test.service` to a copy of the image. The service is
Type=notify and ordered before wattsmart-gateway.service, so the real gateway unit
starts (once, at boot, as in the field) against a lab that lives entirely on the guest's loopback:

1. a throw-away PKI (wattsmart_lab.pki), the box's certificate and key put where the config points;
2. the SunSpec battery simulator (wattsmart_lab.sunspec_server) on 127.0.0.1:5020 (Modbus TCP);
3. the 2030.5 lab server (wattsmart_lab.server) on 127.0.0.1:8443 (mutual TLS) with this box registered
   as an EndDevice and one DERControl in force (charge at -50 % of WMax for 15 minutes);
4. /etc/wattsmart-gateway/gateway.yaml pointing at both, GPIO on the fake backend;

On the Raspberry Pi machine (`make image-test-pi`, /proc/device-tree/model says "Raspberry Pi") the
battery is NOT in the guest: the simulator runs on the host at the far end of the emulated PL011
(/dev/ttyAMA0, the port the default configuration uses), so the config says Modbus RTU there, GPIO
`auto` (the gpiochip), and the kernel's RS-485 mode when the driver has it. The guest then also
reports the GPIO lines the gateway holds (debugfs), and bytes written to the SD card while the
gateway runs and while it is stopped (/sys/block/mmcblk0/stat).

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
MODEL = Path("/proc/device-tree/model")
PI = MODEL.exists() and "Raspberry Pi" in MODEL.read_text(errors="replace")
#: the emulated Pi (one TCG thread per core, an emulated SD card) is several times slower than virt
DEADLINE_S = float(os.environ.get("WSG_TEST_DEADLINE_S", "1200" if PI else "420"))
UART = "/dev/ttyAMA0"
#: windows of the bytes-written measurement (Pi run): gateway running, then gateway stopped
WRITE_WINDOW_S = float(os.environ.get("WSG_WRITE_WINDOW_S", "300"))


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


def config_text(dcap_url: str, identity: Path = IDENTITY, *, rs485: bool = False) -> str:
    """The gateway's configuration for the lab: everything on 127.0.0.1, GPIO faked; on the Pi,
    the battery on the header UART (Modbus RTU) and GPIO through the gpiochip."""
    if PI:
        mode = "    rs485:\n      rts_on_send: true\n" if rs485 else ""
        inverter = f"""inverter:
  transport: rtu
  serial:
    port: {UART}
    baudrate: 9600
{mode}  unit_id: 1
  timeout_s: 2.0
"""
        gpio = "gpio:\n  backend: auto\n"
    else:
        inverter = f"inverter:\n  transport: tcp\n  host: 127.0.0.1\n  port: {MODBUS_PORT}\n  unit_id: 1\n"
        gpio = "gpio:\n  backend: fake\n"
    return f"""# written by the image test (guest_lab.py): everything on 127.0.0.1
server:
  dcap_url: {dcap_url}
  ca_file: {identity}/ca.pem
  cert_file: {identity}/client.pem
  key_file: {identity}/client.key
  default_poll_rate_s: 30
{inverter}telemetry:
  interval_s: 5
  default_post_rate_s: 15
  status_interval_s: 15
{gpio}status_page:
  enabled: true
  host: 127.0.0.1
  port: 8080
log_level: INFO
"""


def write_config(dcap_url: str, *, rs485: bool = False) -> None:
    CONFIG.write_text(config_text(dcap_url, rs485=rs485))
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
    from wattsmart_lab import pki as pki_mod
    from wattsmart_lab.server import LabServer
    from wattsmart_lab.sunspec_server import SunSpecServer

    LAB.mkdir(parents=True, exist_ok=True)
    pki = pki_mod.generate(LAB / "pki", ("client",))
    install_identity(pki)
    sim = None if PI else SunSpecServer(host="127.0.0.1", port=MODBUS_PORT)
    if sim is not None:
        await sim.start()
    rs485_mode = PI and uart_rs485()
    lab = LabServer(pki, host="127.0.0.1", port=SEP_PORT)
    await lab.start()
    lfdi = lab.lfdi_of(pki.client("client"))
    now = lab.tree.now()
    control = lab.tree.add_control(1, start=now - dt.timedelta(seconds=5), duration=900, fixed_w=-5000)
    write_config(lab.dcap_url, rs485=rs485_mode)
    battery = f"Modbus RTU on {UART} (host simulator)" if PI else f"SunSpec 127.0.0.1:{MODBUS_PORT}"
    say(f"lab up: 2030.5 {lab.dcap_url}, battery {battery}, control {control.mRID} fixedW=-50%")

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
        if "control" not in got and sim is None:
            # the battery is on the host: the gateway's "started" response means it wrote the
            # setpoint over RTU (it answers only after the write); the host checks the registers
            started = [r for r in lab.tree.responses if _status(r) == 2 and _subject(r) == control.mRID]
            if started:
                got["control"] = uptime()
                details["responses"] = [_status(r) for r in lab.tree.responses]
                responses = details["responses"]
                say(f"CONTROL: applied over RTU on {UART}, DERControlResponse started ({responses})")
        if "control" not in got and sim is not None:
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

    if PI:
        details.update(pi_facts(rs485_mode))
        if not got.keys() - {"status"} >= {"ready", "control", "reading"}:
            pass  # no measurement on a failed run
        else:
            details["writes"] = measure_writes()
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
    if sim is not None:
        await sim.stop()
    return 0 if not missing else 1


def uart_rs485() -> bool:
    """Whether the header UART's driver takes the kernel's RS-485 mode (then the config uses it)."""
    from hal import rs485

    try:
        flags, _before, _after = rs485.apply(UART, rs485.Rs485Settings())
    except OSError as exc:
        say(f"RS485: {exc.strerror or exc}; the gateway uses {UART} without it")
        return False
    say(f"RS485: kernel RS-485 mode on {UART} (flags {flags:#x}); the gateway config uses it")
    return True


def gpio_lines() -> list[str]:
    """The gateway's GPIO lines as the kernel lists them (debugfs): direction and consumer."""
    debug = Path("/sys/kernel/debug")
    if not (debug / "gpio").exists():
        subprocess.run(["mount", "-t", "debugfs", "debugfs", str(debug)], check=False)
    text = (debug / "gpio").read_text() if (debug / "gpio").exists() else ""
    return [line.strip() for line in text.splitlines() if "wattsmart" in line or "gpiochip" in line]


def pi_facts(rs485_mode: bool) -> dict[str, Any]:
    """What the Pi's device tree shows of the gateway: the gpiochip and its lines, the UART."""
    lines = gpio_lines()
    for line in lines:
        say(f"GPIO {line}")
    mine = [line for line in lines if "wattsmart" in line]
    # BCM 17/27/22 are the LED (out), 23 the button (in), per the default gpio section
    outs = sorted(int(m.split("GPIO")[1].split()[0]) for m in mine if " out " in f" {m} " and "GPIO" in m)
    ins = sorted(int(m.split("GPIO")[1].split()[0]) for m in mine if " in " in f" {m} " and "GPIO" in m)
    link = os.path.realpath("/dev/gpiochip-header") if os.path.exists("/dev/gpiochip-header") else None
    say(f"GPIO held by the gateway: outputs {outs}, inputs {ins}; /dev/gpiochip-header -> {link}")
    uart = sh("sh", "-c", f"ls -l {UART}; cat /proc/tty/driver/ttyAMA 2>/dev/null | head -3")
    say(f"UART {uart}")
    return {"gpio_outputs": outs, "gpio_inputs": ins, "gpiochip_header": link, "rs485_mode": rs485_mode}


def sectors_written() -> int:
    """Sectors written to the SD card since boot (/sys/block/mmcblk0/stat, field 7)."""
    return int(Path("/sys/block/mmcblk0/stat").read_text().split()[6])


def fs_written_kib() -> dict[str, int]:
    """KiB each ext4 file system has written since it was made (root_a, data)."""
    out = {}
    for fs in Path("/sys/fs/ext4").glob("mmcblk0p*"):
        with contextlib.suppress(OSError, ValueError):
            out[fs.name] = int((fs / "lifetime_write_kbytes").read_text())
    return out


def first_boot_settled(limit_s: float = 900.0) -> float:
    """Wait until the kernel has zeroed the new file systems' inode tables (ext4lazyinit, first boot
    only: the image's root_a and the grown data partition); returns how long that took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s and "ext4lazyinit" in sh("ps", "-e", "-o", "comm="):
        time.sleep(5)
    return time.monotonic() - t0


def measure_writes() -> dict[str, float]:
    """Bytes written to the card per day: the whole box with the gateway running, then stopped."""
    out: dict[str, float] = {}
    waited = first_boot_settled()
    first = sectors_written() * 512
    out["first_boot_bytes"] = first
    say(f"WRITES first boot: {first} bytes since power-on; ext4 inode tables zeroed {waited:.0f} s later")
    for phase in ("operation", "idle"):
        if phase == "idle":
            sh("systemctl", "stop", UNIT)
        before, t0, fs0 = sectors_written(), time.monotonic(), fs_written_kib()
        say(f"WRITES: measuring {phase} for {WRITE_WINDOW_S:.0f} s")
        time.sleep(WRITE_WINDOW_S)
        written = (sectors_written() - before) * 512
        per_day = written * 86400 / (time.monotonic() - t0)
        fs1 = fs_written_kib()
        say(
            f"WRITES {phase} per file system (KiB): "
            + ", ".join(f"{k} {fs1[k] - fs0.get(k, 0)}" for k in fs1)
        )
        out[f"{phase}_bytes"] = written
        out[f"{phase}_mb_per_day"] = round(per_day / 1e6, 2)
        rate = f"{per_day / 1e6:.2f} MB/day (whole box)"
        say(f"WRITES {phase}: {written} bytes in {WRITE_WINDOW_S:.0f} s = {rate}")
    return out


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
