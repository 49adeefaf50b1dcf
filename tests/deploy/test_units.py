"""Fast checks of deploy/: the units verify cleanly, their hardening scores, sysusers/tmpfiles/udev syntax.

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

from app.commissioning.status_page import MAX_CONNECTIONS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "wattsmart-gateway.service"
#: the update units (app/ota): drop-in for the gateway, rollback (OnFailure=), recover (boot), updater
OTA_DROPIN = DEPLOY / "wattsmart-gateway.service.d" / "10-ota.conf"
ROLLBACK = DEPLOY / "wattsmart-gateway-rollback.service"
RECOVER = DEPLOY / "wattsmart-gateway-recover.service"
UPDATER = DEPLOY / "wattsmart-gateway-updater.service"
OTA_UNITS = (ROLLBACK, RECOVER, UPDATER)
SYSUSERS = DEPLOY / "sysusers.d" / "wattsmart-gateway.conf"
TMPFILES = DEPLOY / "tmpfiles.d" / "wattsmart-gateway.conf"
UDEV_RULES = DEPLOY / "udev" / "rules.d" / "60-wattsmart-gateway-gpio.rules"
WATCHDOG_DROPIN = DEPLOY / "system.conf.d" / "10-wattsmart-watchdog.conf"
INSTALL = DEPLOY / "install.sh"
#: where the unit's ExecStart expects the gateway (deploy/install.sh puts it there)
EXEC_PATH = "opt/wattsmart-gateway/current/bin/wattsmart-gateway"
#: what the update units run (the venv's python of `current` and `previous`, and /bin/sh)
OTA_EXEC_PATHS = (
    "opt/wattsmart-gateway/current/bin/python",
    "opt/wattsmart-gateway/previous/bin/python",
    "bin/sh",
)
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
if ANALYZE is None and not os.environ.get("CI"):
    pytest.skip("systemd-analyze is not installed (apt-get install systemd)", allow_module_level=True)


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30, check=False)


def _staged_root(tmp_path: Path, texts: dict[str, str]) -> Path:
    """A root holding systemd's own units, ours as install.sh places them, and stub executables.

    verify needs the targets the units refer to (sysinit.target, ...) and an executable at each
    ExecStart path, which does not exist on a build machine. `texts` replaces files by their path
    under deploy/ (to plant a typo).
    """
    root = tmp_path / "root"
    units = Path("/usr/lib/systemd/system")
    if not units.is_dir():
        units = Path("/lib/systemd/system")
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    for path in (EXEC_PATH, *OTA_EXEC_PATHS):
        exe = root / path
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    local = root / "usr/local/lib/systemd/system"
    for source in (UNIT, OTA_DROPIN, *OTA_UNITS):
        name = str(source.relative_to(DEPLOY))
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_text(texts.get(name, source.read_text()))
    return root


def _verify(tmp_path: Path, **texts: str) -> subprocess.CompletedProcess[str]:
    root = _staged_root(tmp_path, {k.replace("__", "/"): v for k, v in texts.items()})
    names = [UNIT.name, *(u.name for u in OTA_UNITS)]
    return _run(ANALYZE or "systemd-analyze", "verify", f"--root={root}", *names)


def test_units_verify_without_any_message(tmp_path: Path) -> None:
    result = _verify(tmp_path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_verify_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    """The gate above is only worth something if a typo in [Service] produces output."""
    text = UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs=", 1)
    result = _verify(tmp_path, **{UNIT.name: text})
    assert "WatchdogSecs" in result.stderr


def test_verify_reads_the_ota_dropin_and_units(tmp_path: Path) -> None:
    """The drop-in is where install.sh puts it (else verify would not see this typo), and so are the units."""
    dropin = re.sub(r"^OnFailure=", "OnFailures=", OTA_DROPIN.read_text(), count=1, flags=re.M)
    updater = re.sub(r"^ReadWritePaths=", "ReadWritePath=", UPDATER.read_text(), count=1, flags=re.M)
    texts = {"wattsmart-gateway.service.d__10-ota.conf": dropin, UPDATER.name: updater}
    result = _verify(tmp_path, **texts)
    assert "OnFailures" in result.stderr and "ReadWritePath" in result.stderr, result.stderr


@pytest.mark.parametrize("unit", [UNIT, *OTA_UNITS], ids=lambda u: u.name)
def test_security_exposure_is_at_most_2(unit: Path) -> None:
    """The gateway and the (root) update units alike; deploy/README.md lists the scores."""
    result = _run(ANALYZE or "systemd-analyze", "security", "--offline=yes", "--no-pager", unit)
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
    # exactly the header's gpiochip (the udev link), never the whole gpiochip class
    assert "/dev/gpiochip-header rw" in service["DeviceAllow"] and "char-gpiochip" not in allowed
    assert service["ExecStart"][0].split()[0] == "/" + EXEC_PATH
    assert "PYTHONFAULTHANDLER=1" in " ".join(service["Environment"])  # tracebacks on a watchdog kill
    assert "network-online.target" not in " ".join(unit.get("After", []))  # never wait for a network


#: what tests/app/test_flood.py measured (make test-flood): the units are sized from these
MEASURED_FDS_PEAK = 42
MEASURED_RSS_PEAK_MIB = 47
#: the event loop, the asyncio default executor at its largest on a 4-core Pi (min(32, 4 + 4)), a spare
MAX_THREADS = 1 + 8 + 1
BOX_RAM_MIB = 512


def test_unit_limits_hold_with_headroom_over_what_was_measured() -> None:
    """LimitNOFILE, MemoryHigh/MemoryMax, TasksMax and the log rate limit: present, sized, ordered."""
    service = _section(UNIT, "Service")
    nofile = int(service["LimitNOFILE"][-1])
    assert 4 * max(MEASURED_FDS_PEAK, MAX_CONNECTIONS + 16) <= nofile <= 1024
    high, top = _mib(service["MemoryHigh"][-1]), _mib(service["MemoryMax"][-1])
    assert 2 * MEASURED_RSS_PEAK_MIB <= high < top <= BOX_RAM_MIB // 2
    assert int(service["TasksMax"][-1]) >= 3 * MAX_THREADS
    # journald: at most Burst messages per Interval from this unit, so a storm stays small
    burst = int(service["LogRateLimitBurst"][-1])
    interval = _seconds(service["LogRateLimitIntervalSec"][-1])
    assert 0 < burst <= 1000 and interval > 0
    assert burst / interval * 3600 * 200 < 64 << 20  # an hour of storm at 200 bytes/line: under 64 MiB


def _mib(size: str) -> float:
    """A systemd size ("192M", "1G", "262144K") in MiB."""
    match = re.fullmatch(r"(\d+)([KMG]?)", size)
    assert match, size
    return int(match[1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "": 1 / (1 << 20)}[match[2]]


def test_ota_units_carry_the_update_contract() -> None:
    """What app/ota relies on (app/ota/README.md); the units' paths are OtaSettings' defaults."""
    from app.ota.settings import OtaSettings

    dropin = _section(OTA_DROPIN, "Unit")
    assert dropin["OnFailure"] == [ROLLBACK.name]
    assert RECOVER.name in dropin["Wants"] and RECOVER.name in dropin["After"]
    rollback = _section(ROLLBACK, "Service")["ExecStart"][0]
    # code of the known-good release, never of the failing one
    assert rollback.startswith("/opt/wattsmart-gateway/previous/bin/python -m app.ota rollback --crash-loop")
    assert "wattsmart-gateway.service" in " ".join(_section(RECOVER, "Unit")["Before"])
    assert _section(RECOVER, "Service")["Type"] == ["oneshot"]
    assert _section(UPDATER, "Service")["Restart"] == ["always"]  # it exits after a commit
    settings = OtaSettings()
    for unit in OTA_UNITS:
        service = _section(unit, "Service")
        writable = " ".join(service["ReadWritePaths"]).split()
        for path in (settings.root, settings.state_dir, settings.trust_store.parent):
            assert str(path) in writable, (unit.name, path)
        assert service["ProtectSystem"] == ["strict"]
        assert service["NoNewPrivileges"] == ["yes"]
        assert service["UMask"] == ["0022"]  # release folders must be readable by the gateway's user
    script = INSTALL.read_text()
    for unit in (OTA_DROPIN, *OTA_UNITS):
        assert str(unit.relative_to(DEPLOY)) in script, f"install.sh does not install {unit.name}"
    enabled = re.search(r'^ota_units="([^"]*)"', script, re.M)
    assert enabled and set(enabled[1].split()) == {RECOVER.name, UPDATER.name}  # the rollback is not enabled
    # ReadWritePaths= needs the state folder to exist: tmpfiles makes it, root's (the gateway only reads it)
    assert re.search(rf"^d {settings.state_dir}\s+0755 root\s+root\s", TMPFILES.read_text(), re.M)


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
    header = [r for r in rules if 'SYMLINK+="gpiochip-header"' in r]
    assert len(header) == 1 and 'DRIVERS=="pinctrl-bcm2835|pinctrl-rp1"' in header[0]


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
