"""Fast checks of deploy/: the unit verifies cleanly, its hardening score, sysusers/tmpfiles/udev syntax.

systemd 252's `systemd-analyze verify` only *warns* about unknown keys and bad values (exit 0), so any
stderr output fails here. These run without systemd as PID 1 (only the systemd package is needed);
`.ci/run` installs it, so in CI they never skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "wattsmart-gateway.service"
SYSUSERS = DEPLOY / "sysusers.d" / "wattsmart-gateway.conf"
TMPFILES = DEPLOY / "tmpfiles.d" / "wattsmart-gateway.conf"
UDEV_RULES = DEPLOY / "udev" / "rules.d" / "60-wattsmart-gateway-gpio.rules"
WATCHDOG_DROPIN = DEPLOY / "system.conf.d" / "10-wattsmart-watchdog.conf"
INSTALL = DEPLOY / "install.sh"
#: where the unit's ExecStart expects the gateway (deploy/install.sh puts it there)
EXEC_PATH = "opt/wattsmart-gateway/current/bin/wattsmart-gateway"
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
if ANALYZE is None and not os.environ.get("CI"):
    pytest.skip("systemd-analyze is not installed (apt-get install systemd)", allow_module_level=True)


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30, check=False)


def _staged_root(tmp_path: Path, unit_text: str) -> Path:
    """A root holding systemd's own units, the unit as install.sh places it, and a stub ExecStart.

    verify needs the targets the unit refers to (sysinit.target, ...) and an executable at the
    ExecStart path, which does not exist on a build machine.
    """
    root = tmp_path / "root"
    units = Path("/usr/lib/systemd/system")
    if not units.is_dir():
        units = Path("/lib/systemd/system")
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    exe = root / EXEC_PATH
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    local = root / "usr/local/lib/systemd/system"
    local.mkdir(parents=True)
    (local / UNIT.name).write_text(unit_text)
    return root


def _verify(tmp_path: Path, unit_text: str) -> subprocess.CompletedProcess[str]:
    root = _staged_root(tmp_path, unit_text)
    return _run(ANALYZE or "systemd-analyze", "verify", f"--root={root}", UNIT.name)


def test_unit_verifies_without_any_message(tmp_path: Path) -> None:
    result = _verify(tmp_path, UNIT.read_text())
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_verify_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    """The gate above is only worth something if a typo in [Service] produces output."""
    text = UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs=", 1)
    result = _verify(tmp_path, text)
    assert "WatchdogSecs" in result.stderr


def test_security_exposure_is_at_most_2() -> None:
    result = _run(ANALYZE or "systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT)
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-500:]
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{result.stdout}"


def test_unit_carries_the_required_settings() -> None:
    """The contract with the app and the box, spelled out so a careless edit fails loudly."""
    service = _section(UNIT, "Service")
    unit = _section(UNIT, "Unit")
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # app/cli.py: 2 = configuration error
    assert _seconds(service["WatchdogSec"][-1]) <= 60
    assert _seconds(service["TimeoutStopSec"][-1]) >= 15  # the gateway needs up to 10 s to release
    assert "StartLimitIntervalSec" in unit and "StartLimitBurst" in unit
    assert service["User"] == ["wattsmart-gateway"]
    assert service["SupplementaryGroups"] == ["dialout gpio"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["StateDirectory"] == ["wattsmart-gateway"]
    assert service["ConfigurationDirectory"] == ["wattsmart-gateway"]
    assert service["DevicePolicy"] == ["closed"]
    assert service["CapabilityBoundingSet"] == [""]
    assert "@system-service" in service["SystemCallFilter"]
    allowed = " ".join(service["DeviceAllow"])
    for device in ("ttyAMA", "ttyUSB", "gpiochip", "gpiomem"):
        assert device in allowed
    assert service["ExecStart"][0].split()[0] == "/" + EXEC_PATH
    assert "PYTHONFAULTHANDLER=1" in " ".join(service["Environment"])  # tracebacks on a watchdog kill
    assert "network-online.target" not in " ".join(unit.get("After", []))  # never wait for a network


def test_sysusers_and_tmpfiles_apply_to_an_empty_root(tmp_path: Path) -> None:
    """Both tools parse and apply our files (with Debian's base users) into a scratch root."""
    sysusers, tmpfiles = shutil.which("systemd-sysusers"), shutil.which("systemd-tmpfiles")
    if sysusers is None or tmpfiles is None:
        pytest.skip("systemd-sysusers/systemd-tmpfiles are not installed")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    (root / "usr/lib/tmpfiles.d").mkdir(parents=True)
    basic = Path("/usr/lib/sysusers.d/basic.conf")
    if basic.exists():  # defines dialout; without it sysusers would invent the group
        shutil.copy(basic, root / "usr/lib/sysusers.d")
    shutil.copy(SYSUSERS, root / "usr/lib/sysusers.d")
    shutil.copy(TMPFILES, root / "usr/lib/tmpfiles.d")

    result = _run(sysusers, f"--root={root}")
    noise = [line for line in result.stderr.splitlines() if not line.startswith("Creating ")]
    assert result.returncode == 0 and not noise, result.stderr
    passwd = (root / "etc/passwd").read_text()
    group = (root / "etc/group").read_text()
    assert re.search(r"^wattsmart-gateway:x:\d+:\d+:", passwd, re.M)
    assert re.search(r"^gpio:x:\d+:wattsmart-gateway$", group, re.M)
    assert re.search(r"^dialout:x:20:wattsmart-gateway$", group, re.M)

    if os.geteuid() != 0:
        pytest.skip("tmpfiles --create needs root to set owners")
    result = _run(tmpfiles, f"--root={root}", "--create")  # resolves our user in root/etc/passwd
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    identity = root / "var/lib/wattsmart-gateway/identity"
    assert identity.is_dir() and identity.stat().st_mode & 0o777 == 0o700


def test_udev_rule_gives_gpio_group_the_gpio_nodes() -> None:
    """No `udevadm verify` in systemd 252: check the rule's grammar by hand."""
    token = re.compile(r'^(?P<key>[A-Z_]+)(?P<op>==|!=|=|\+=|:=)"(?P<value>[^"]*)"$')
    rules = [ln.strip() for ln in UDEV_RULES.read_text().splitlines() if ln.strip() and ln[0] != "#"]
    assert rules
    matched: list[str] = []
    for rule in rules:
        parts = [p.strip() for p in rule.split(",")]
        parsed = [token.match(p) for p in parts]
        assert all(parsed), f"bad token in {rule!r}"
        ops = {m["key"]: (m["op"], m["value"]) for m in parsed if m}
        assert ops["GROUP"] == ("=", "gpio") and ops["MODE"] == ("=", "0660"), rule
        matched.append(ops["KERNEL"][1])
    assert "gpiochip*" in matched and any(k.startswith("gpiomem") for k in matched)


def test_watchdog_dropin_arms_pid1_watchdog() -> None:
    manager = _section(WATCHDOG_DROPIN, "Manager")
    runtime = _seconds(manager["RuntimeWatchdogSec"][-1])
    assert 0 < runtime <= 15  # the BCM283x/2711 watchdog cannot count further
    assert _seconds(manager["RebootWatchdogSec"][-1]) > 0


def test_install_script_is_executable_and_shellcheck_clean() -> None:
    assert os.access(INSTALL, os.X_OK)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    result = _run(shellcheck, INSTALL)
    assert result.returncode == 0, result.stdout


def _section(path: Path, name: str) -> dict[str, list[str]]:
    """One section of a systemd-style ini file; repeated keys keep every value."""
    values: dict[str, list[str]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        if current == name:
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _seconds(span: str) -> float:
    """A systemd time span ("30s", "2min", "1min 30s", "90") in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "": 1}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts, span
    for number, unit in parts:
        total += float(number) * units[unit]
    return total
