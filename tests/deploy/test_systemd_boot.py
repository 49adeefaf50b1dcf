"""The deploy units under a real systemd: a debootstrapped Debian tree booted with systemd-nspawn.

Slow (a cold run builds the tree with debootstrap); run with `make test-systemd`. Shows, with the
gateway installed by deploy/install.sh from a wheel of this checkout:

- it reaches `active` through READY=1 (Type=notify) as its own unprivileged user, while the 2030.5
  server is unreachable, and keeps the watchdog fed;
- a SIGSTOPped gateway is killed by the systemd watchdog and restarted;
- `systemctl stop` makes it release the battery (the SunSpec simulator's 704 WSetEna goes to 0) and
  exit 0 within 10 s;
- deploy/install.sh also works on the running box (systemd up): it reinstalls and starts the service;
- a configuration error keeps the box up, not commissioned (no restart loop), and the corrected file
  is taken up by itself (exit 75, restarted by systemd).

The battery is wattsmart_lab.sunspec_server on 127.0.0.1:5020, a second unit in the container.
Set WSG_KEEP_TREE=1 to keep the container tree for inspection (`systemd-nspawn -D <tree> -b`).
"""

from __future__ import annotations

import re
import time

import pytest

from tests.deploy import nspawn
from tests.deploy.gatewaybox import SIM_UNIT, UNIT, WATCHDOG_S, Box

pytestmark = pytest.mark.slow


def test_reaches_active_through_ready_as_its_own_user(box: Box) -> None:
    box.wait_active()
    c = box.container
    props = c.show(
        UNIT,
        "Type",
        "NRestarts",
        "MainPID",
        "StatusText",
        "WatchdogUSec",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
    )
    # Type=notify: systemd moves the unit from "activating" to "active" only on READY=1.
    assert props["Type"] == "notify"
    assert props["NRestarts"] == "0", box.explain()
    assert props["WatchdogUSec"] == f"{WATCHDOG_S}s"
    ready_s = (
        int(props["ActiveEnterTimestampMonotonic"]) - int(props["ExecMainStartTimestampMonotonic"])
    ) / 1e6
    box.figures["start -> READY (s)"] = ready_s
    assert "Started" in c.journal(UNIT)

    pid = props["MainPID"]
    status = c.sh("cat", f"/proc/{pid}/status").stdout
    fields = dict(re.findall(r"^(\w+):\s*(.*)$", status, re.M))
    assert fields["Uid"].split() == [str(box.uid)] * 4, status
    assert fields["Gid"].split() == [str(box.gid)] * 4, status
    assert {str(box.groups["dialout"]), str(box.groups["gpio"])} <= set(fields["Groups"].split())
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"
    box.figures["RSS at READY (MiB)"] = int(fields["VmRSS"].split()[0]) / 1024

    # The watchdog is fed: alive, same process, no restart, over two watchdog periods.
    before = c.show(UNIT, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
    time.sleep(2 * WATCHDOG_S)
    after = c.show(UNIT, "ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic")
    assert (after["ActiveState"], after["MainPID"], after["NRestarts"]) == ("active", pid, "0"), box.explain()
    assert int(after["WatchdogTimestampMonotonic"]) > int(before), "no WATCHDOG=1 pings seen"
    print(f"start -> READY {ready_s:.2f} s; status: {props['StatusText']!r}")


def test_watchdog_kills_a_stopped_gateway_and_restarts_it(box: Box) -> None:
    box.wait_active()
    c = box.container
    before = box.state()
    pid, restarts = before["MainPID"], int(before["NRestarts"])
    c.sh("kill", "-STOP", pid)

    def restarted() -> bool:
        now = box.state()
        return (
            int(now["NRestarts"]) == restarts + 1
            and now["ActiveState"] == "active"
            and now["MainPID"] not in ("0", pid)
        )

    took = nspawn.wait_until(restarted, 6 * WATCHDOG_S + 30, "the watchdog restart", box.explain)
    box.figures["SIGSTOP -> active again (s)"] = took
    log = c.journal(UNIT, lines=200)
    assert re.search(rf"Watchdog timeout \(limit {WATCHDOG_S}s\)", log), log
    assert "Failed with result 'watchdog'" in log, log  # restarted because of the watchdog, nothing else
    assert "Fatal Python error: Aborted" in log, log  # PYTHONFAULTHANDLER: where it hung is in the journal


def test_stop_releases_the_battery_and_exits_cleanly(box: Box) -> None:
    box.wait_active()
    c = box.container
    # A setpoint in force, as a 2030.5 control would leave it (no device-side revert timer, so only
    # the gateway's release can clear it).
    held = box.battery("hold", "-2000")
    assert held["WSetEna"] == 1 and held["WSet_W"] == -2000, held
    time.sleep(2)
    assert box.battery("read")["WSetEna"] == 1, "the setpoint was cleared before the stop"
    sim_before = c.show(SIM_UNIT, "MainPID", "NRestarts")

    started = time.monotonic()
    c.sh("systemctl", "stop", UNIT, timeout=60)
    took = time.monotonic() - started
    box.figures["systemctl stop (s)"] = took

    after = box.state()
    assert after["ActiveState"] == "inactive", after
    assert after["Result"] == "success", f"{after}\n{box.explain()}"
    # code=exited status=0: the gateway exited on its own, it was not killed by a signal.
    assert (after["ExecMainCode"], after["ExecMainStatus"]) == ("1", "0"), f"{after}\n{box.explain()}"
    assert took < 10, f"stop took {took:.1f} s\n{box.explain()}"
    battery = box.battery("read")
    assert battery["WSetEna"] == 0, f"battery still held after stop: {battery}\n{box.explain()}"
    # The same simulator process throughout: a restarted simulator would also read WSetEna 0.
    assert c.show(SIM_UNIT, "MainPID", "NRestarts") == sim_before
    log = c.journal(UNIT, lines=200)
    assert "SIGKILL" not in log and "timed out" not in log, log


def test_install_script_on_the_running_box_reinstalls_and_starts_it(box: Box) -> None:
    """The other half of install.sh: with systemd running it reloads, enables and (re)starts."""
    c = box.container
    before = c.show(UNIT, "ActiveState", "MainPID")
    result = c.sh(
        "/bin/sh",
        "/mnt/deploy/install.sh",
        "--reinstall",
        "--wheelhouse",
        "/mnt/wheels",
        f"/mnt/wheels/{box.wheel}",
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started" in result.stdout, result.stdout
    box.wait_active()
    after = c.show(UNIT, "MainPID", "UnitFileState")
    assert after["MainPID"] not in ("0", before["MainPID"]), (before, after)
    assert after["UnitFileState"] == "enabled"
    assert c.sh("readlink", "/opt/wattsmart-gateway/current").stdout.strip().startswith("releases/")
    state = c.sh("systemctl", "is-system-running", check=False).stdout.strip()
    assert state == "running", c.sh("systemctl", "--failed", "--no-pager", check=False).stdout


def test_a_configuration_error_keeps_the_box_up_not_commissioned(box: Box) -> None:
    c = box.container
    config = box.root / "etc/wattsmart-gateway/gateway.yaml"
    good = config.read_text()
    try:
        config.write_text(good.replace("transport: tcp", "transport: carrier-pigeon"))
        c.sh("systemctl", "restart", UNIT, check=False)
        box.wait_active(30)  # READY=1 from the not-commissioned mode: LED, button, status page
        time.sleep(3)  # > RestartSec: it stays up, no restart loop
        state = box.state()
        assert state["ActiveState"] == "active" and state["NRestarts"] == "0", state
        log = c.journal(UNIT, lines=40)
        assert "configuration error" in log and "inverter.transport" in log, log
        assert "not commissioned: configuration" in log, log
        # the corrected file is taken up by itself: exit 75, and systemd starts the gateway on it
        config.write_text(good)
        nspawn.wait_until(
            lambda: box.state()["NRestarts"] == "1" and box.state()["ActiveState"] == "active",
            40,
            "the gateway to restart on the corrected file",
            box.explain,
        )
    finally:
        config.write_text(good)
        c.sh("systemctl", "reset-failed", UNIT, check=False)
        c.sh("systemctl", "start", UNIT, check=False)
    box.wait_active()
