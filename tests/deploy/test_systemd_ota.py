"""Real over-the-air updates under systemd, in the nspawn box (runs after test_systemd_boot.py).

Bundles are built on the host with the release tool (`python -m wattsmart_release bundle`), signed
with the fleet key whose trust store deploy/install.sh provisioned (`--trust`): the installed
gateway re-versioned (a fourth number appended), with its composition root (app/gateway.py, whose
`run` the CLI calls) swapped for a broken one in two of them. Inside the box, `wattsmart-gateway
update install` (or the updater unit) does the rest,
with the trial shortened by the config's `ota:` section (READY within 10 s, healthy for 5 s).

- install.sh installed and enabled the update units, the trust store is root's 0644, the update
  state folder is root's and outside the gateway's (whose uid cannot plant a trial there), and the
  updater runs with one capability, no new privileges and a syscall filter; a trust store already on
  the box is replaced only by a higher serial;
- a good release: `current` switches, the new release reaches READY, stays healthy for
  healthy_for_s and is committed (`previous` = the old one);
- a crash-looping release installed with --no-wait (nobody watches the trial): systemd restarts it
  up to the start limit, OnFailure= starts the rollback unit from `previous`, the old release runs
  again and `update status` says why;
- a release that starts but never sends READY=1: the watching updater rolls it back after
  ready_timeout_s;
- the fleet path through the hardened updater unit: a signed manifest on the box's own loopback
  offers a good release; the sandboxed updater downloads, installs, watches and commits it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.deploy import nspawn
from tests.deploy.gatewaybox import FLEET_KEY_ID, TRUST_STORE, UNIT, Box, release_tool

pytestmark = pytest.mark.slow

RECOVER = "wattsmart-gateway-recover.service"
ROLLBACK = "wattsmart-gateway-rollback.service"
UPDATER = "wattsmart-gateway-updater.service"
FLEET_HOST = "wsg-test-fleet-host.service"
FLEET_PORT = 8765
CONFIG = "/etc/wattsmart-gateway/gateway.yaml"
CLI = "/opt/wattsmart-gateway/current/bin/wattsmart-gateway"
ROOT = "/opt/wattsmart-gateway"
STATE = "var/lib/wattsmart-gateway-ota/state.json"
#: as the gateway's own test config sets them (tests/deploy/gatewaybox.py GATEWAY_YAML)
READY_TIMEOUT_S = 10
HEALTHY_FOR_S = 5
#: a clean environment for commands in the box (nsenter would pass the host's on)
ENV = ("env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")

CRASHING_GATEWAY = '''"""Test release: fails at once on every start (Restart=on-failure loops)."""

import sys


def run(config: object, *_: object) -> int:
    print("test release: failing at start-up on purpose", file=sys.stderr)
    return 1
'''

HANGING_GATEWAY = '''"""Test release: starts, but never sends READY=1 (and never exits by itself)."""

import time


def run(config: object, *_: object) -> int:
    print("test release: never ready, on purpose", flush=True)
    while True:
        time.sleep(3600)
'''

#: name -> (fourth version number, files replaced in the checkout's copy)
RELEASES: dict[str, tuple[int, dict[str, str]]] = {
    "good": (1, {}),
    "crash": (2, {"app/gateway.py": CRASHING_GATEWAY}),
    "hang": (3, {"app/gateway.py": HANGING_GATEWAY}),
    "fleet": (4, {}),
}


@dataclass
class Fleet:
    """The signed bundles, on the host under files/ota/ (= /mnt/test/ota/ in the box)."""

    base: str
    folder: Path
    key: Path
    versions: dict[str, str]

    def bundle(self, name: str) -> str:
        return f"/mnt/test/ota/{name}.bundle"


@pytest.fixture(scope="module")
def fleet(box: Box) -> Iterator[Fleet]:
    started = time.monotonic()
    base = box.wheel.split("-")[1]  # wattsmart_gateway-<version>-py3-none-any.whl
    wheels = box.work / "wheels"
    deps = sorted(w for w in wheels.glob("*.whl") if not w.name.startswith("wattsmart_gateway-"))
    folder = box.work / "files" / "ota"
    folder.mkdir(exist_ok=True)
    key = box.work / "fleet" / f"{FLEET_KEY_ID}.key"
    versions = {name: f"{base}.{number}" for name, (number, _) in RELEASES.items()}

    def build(name: str) -> None:
        wheel = nspawn.build_gateway_wheel(box.work / "ota-wheels" / name, versions[name], RELEASES[name][1])
        out = folder / f"{name}.bundle"
        release_tool("bundle", "--key", key, "--min-version", base, "--out", out, wheel, *deps)

    with ThreadPoolExecutor(len(RELEASES)) as pool:
        list(pool.map(build, RELEASES))
    box.figures["OTA: 4 wheels + signed bundles on the host (s)"] = time.monotonic() - started
    box.figures["OTA: bundle size (MiB)"] = (folder / "good.bundle").stat().st_size / 2**20
    try:
        yield Fleet(base, folder, key, versions)
    finally:
        shutil.rmtree(box.work / "ota-wheels", ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


def update(box: Box, *args: str, timeout: float = 300) -> CompletedProcess[str]:
    """`wattsmart-gateway update ...` in the box, as an operator runs it (with the box's config)."""
    return box.container.sh(*ENV, CLI, "update", *args, "--config", CONFIG, check=False, timeout=timeout)


def status(box: Box) -> dict[str, object]:
    """`wattsmart-gateway update status` as JSON."""
    result = update(box, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def saved_state(box: Box) -> dict[str, object]:
    """The update state file, read from the host side (cheap enough to poll)."""
    try:
        parsed: dict[str, object] = json.loads((box.root / STATE).read_text())
    except (OSError, ValueError):
        return {}
    return parsed


def last(state: dict[str, object]) -> dict[str, object]:
    outcome = state.get("last")
    return outcome if isinstance(outcome, dict) else {}


def link(box: Box, name: str) -> str:
    return box.container.sh("readlink", f"{ROOT}/{name}").stdout.strip()


def running_version(box: Box) -> str:
    """The version the active gateway's release reports (`current/bin/wattsmart-gateway --version`)."""
    return box.container.sh(*ENV, CLI, "--version").stdout.split()[-1]


def explain(box: Box) -> str:
    c = box.container
    return (
        f"{box.explain()}\n--- update state ---\n{json.dumps(saved_state(box), indent=1)}\n"
        f"--- {ROLLBACK} ---\n{c.journal(ROLLBACK, 30)}\n--- {UPDATER} ---\n{c.journal(UPDATER, 40)}"
    )


def test_install_provisions_the_update_units_and_trust_store(box: Box) -> None:
    c = box.container
    box.wait_active()
    gateway = c.show(UNIT, "OnFailure", "DropInPaths", "After")
    assert gateway["OnFailure"] == ROLLBACK, gateway
    assert "/usr/local/lib/systemd/system/wattsmart-gateway.service.d/10-ota.conf" in gateway["DropInPaths"]
    assert RECOVER in gateway["After"].split()
    states = {u: c.show(u, "UnitFileState")["UnitFileState"] for u in (RECOVER, UPDATER, ROLLBACK)}
    assert states == {RECOVER: "enabled", UPDATER: "enabled", ROLLBACK: "static"}
    recover = c.show(RECOVER, "ActiveState", "Result")
    assert recover == {"ActiveState": "active", "Result": "success"}, c.journal(RECOVER)

    # the updater runs (idle: no manifest_url) with only CAP_DAC_OVERRIDE, no new privileges, seccomp.
    # Restarted first: it exits 2 on a bad config (test_systemd_boot.py planted one) and retries in 60 s.
    c.sh("systemctl", "restart", UPDATER)
    time.sleep(2)  # past its start-up (recover) and into its poll loop
    updater = c.show(UPDATER, "ActiveState", "SubState", "MainPID", "NRestarts")
    assert (updater["ActiveState"], updater["SubState"]) == ("active", "running"), c.journal(UPDATER)
    assert updater["NRestarts"] == "0", c.journal(UPDATER)
    fields = dict(
        line.split(":", 1) for line in c.sh("cat", f"/proc/{updater['MainPID']}/status").stdout.splitlines()
    )
    assert int(fields["Uid"].split()[0]) == 0
    assert int(fields["CapEff"], 16) == int(fields["CapBnd"], 16) == 1 << 1  # CAP_DAC_OVERRIDE
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"

    # the fleet's trust store, root's and world-readable
    assert c.sh("stat", "-c", "%U:%G %a", TRUST_STORE).stdout.split() == ["root:root", "644"]
    provisioned = box.work / "files" / "ota-trust.json"
    assert (box.root / TRUST_STORE.lstrip("/")).read_bytes() == provisioned.read_bytes()

    # the update state is root's, outside the gateway's own folder (whose owner could rename anything in it)
    c.sh("systemctl", "restart", UNIT)
    box.wait_active()
    owner = c.sh("stat", "-c", "%U:%G %a", "/var/lib/wattsmart-gateway-ota").stdout.split()
    assert owner == ["root:root", "755"]
    assert c.sh("test", "-e", "/var/lib/wattsmart-gateway/ota", check=False).returncode != 0
    # as the gateway's uid: plant a trial in the old place (allowed: its own folder), try root's (refused)
    plant = (
        'mkdir -p /var/lib/wattsmart-gateway/ota && printf %s \'{"phase": "trial", "known_good": "0.0.1",'
        ' "trial_boots": 99, "manifest_serial": 1e15}\' | tee /var/lib/wattsmart-gateway/ota/state.json'
        " > /var/lib/wattsmart-gateway-ota/state.json"
    )
    planted = c.sh("runuser", "-u", "wattsmart-gateway", "--", "/bin/sh", "-c", plant, check=False)
    assert planted.returncode != 0 and "Permission denied" in planted.stderr, planted
    assert (
        c.sh(
            "runuser",
            "-u",
            "wattsmart-gateway",
            "--",
            "mv",
            "/var/lib/wattsmart-gateway-ota",
            "/var/lib/x",
            check=False,
        ).returncode
        != 0
    )
    # flock needs only read access: the lock is root's 0600, so the gateway cannot hold it to stop updates
    held = c.sh(
        "runuser",
        "-u",
        "wattsmart-gateway",
        "--",
        "flock",
        "-n",
        "/var/lib/wattsmart-gateway-ota/lock",
        "true",
        check=False,
    )
    assert held.returncode != 0 and "Permission denied" in held.stderr, held
    c.sh("systemctl", "restart", RECOVER)  # root's boot recovery reads only its own folder
    after = status(box)
    assert (after["phase"], after["running"], after["manifest_serial"]) == (
        "idle",
        box.wheel.split("-")[1],
        0,
    )
    c.sh("rm", "-rf", "/var/lib/wattsmart-gateway/ota")

    # install.sh replaces a trust store only with a higher serial (a rotation must not be undone)
    pub = box.work / "fleet" / f"{FLEET_KEY_ID}.pub"
    newer = box.work / "files" / "ota-trust-2.json"
    release_tool("trust", "--serial", "2", "--key", pub, "--out", newer)
    for given, expect in ((newer, "installed"), (provisioned, "kept")):
        result = c.sh(
            "/bin/sh",
            "/mnt/deploy/install.sh",
            "--no-start",
            "--wheelhouse",
            "/mnt/wheels",
            "--trust",
            f"/mnt/test/{given.name}",
            f"/mnt/wheels/{box.wheel}",
            timeout=300,
        )
        assert f"{expect} {TRUST_STORE}" in result.stdout, result.stdout
    assert json.loads((box.root / TRUST_STORE.lstrip("/")).read_text())["serial"] == 2


def test_a_good_release_is_switched_to_proven_healthy_and_committed(box: Box, fleet: Fleet) -> None:
    box.wait_active()
    new = fleet.versions["good"]
    old_pid = box.state()["MainPID"]
    assert link(box, "current") == f"releases/{fleet.base}"

    started = time.monotonic()
    result = update(box, "install", fleet.bundle("good"))
    took = time.monotonic() - started
    box.figures["OTA: good update, install -> committed (s)"] = took
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{explain(box)}"
    assert f"update to {new}: committed (healthy for {HEALTHY_FOR_S} s)" in result.stdout, result.stdout
    # the trial: READY, then healthy for healthy_for_s, watched the whole time
    assert took > HEALTHY_FOR_S
    assert "trial -> idle" in result.stderr, result.stderr

    assert (link(box, "current"), link(box, "previous")) == (f"releases/{new}", f"releases/{fleet.base}")
    after = box.state()
    assert (after["ActiveState"], after["SubState"]) == ("active", "running"), explain(box)
    assert after["MainPID"] != old_pid  # restarted into the new release...
    assert running_version(box) == new  # ...which is the new code

    state = status(box)
    assert (state["phase"], state["known_good"], state["running"], state["previous"]) == (
        "idle",
        new,
        new,
        fleet.base,
    ), state
    assert (last(state)["result"], last(state)["from_version"]) == ("committed", fleet.base), state
    assert state["updating"] is False


def test_a_crash_looping_release_is_rolled_back_by_systemd_onfailure(box: Box, fleet: Fleet) -> None:
    """--no-wait with the updater stopped: nobody watches this trial, only the unit's OnFailure= can undo
    it (the last line of defence when the updater itself is broken or not running)."""
    c = box.container
    box.wait_active()
    good, broken = fleet.versions["good"], fleet.versions["crash"]
    rollbacks = c.show(ROLLBACK, "InvocationID")["InvocationID"]
    c.sh("systemctl", "stop", UPDATER)  # the running updater would otherwise take the trial over

    started = time.monotonic()
    result = update(box, "install", "--no-wait", fleet.bundle("crash"))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    assert f"update to {broken}: trial" in result.stdout, result.stdout
    assert link(box, "current") == f"releases/{broken}"
    assert link(box, "previous") == f"releases/{good}"  # what the rollback unit runs from

    def rolled_back() -> bool:
        state = saved_state(box)
        return state.get("phase") == "idle" and last(state).get("version") == broken

    nspawn.wait_until(rolled_back, 120, "the OnFailure rollback", lambda: explain(box))
    box.wait_active()
    box.figures["OTA: crash loop, install -> rolled back by OnFailure (s)"] = time.monotonic() - started

    state = status(box)
    assert last(state)["result"] == "rolled_back", state
    assert last(state)["reason"] == "the service crash-looped (systemd OnFailure)", state
    assert (state["running"], state["known_good"]) == (good, good), state
    assert broken in state["failed"], state  # type: ignore[operator]
    assert link(box, "current") == f"releases/{good}"
    assert running_version(box) == good
    # discarded: the rollback unit deletes the folder just after it saves the outcome (a venv: ~1 s)
    folder = box.root / ROOT.lstrip("/") / "releases" / broken
    nspawn.wait_until(lambda: not folder.exists(), 30, f"{folder} to be discarded", lambda: explain(box))

    # systemd, not a watcher: the unit hit its start limit, OnFailure= ran the rollback unit once
    log = c.journal(UNIT, lines=300)
    assert "failing at start-up on purpose" in log, log
    assert "Start request repeated too quickly" in log, log
    rollback = c.show(ROLLBACK, "InvocationID", "Result", "ExecMainStatus")
    assert rollback["InvocationID"] != rollbacks and rollback["Result"] == "success", rollback
    assert f"update to {broken}: rolled_back" in c.journal(ROLLBACK, 50)
    assert c.sh("systemctl", "is-system-running", check=False).stdout.strip() == "running", c.sh(
        "systemctl", "--failed", "--no-pager", check=False
    ).stdout
    c.sh("systemctl", "start", UPDATER)


def test_a_release_that_never_gets_ready_is_rolled_back_by_the_updater(box: Box, fleet: Fleet) -> None:
    box.wait_active()
    good, broken = fleet.versions["good"], fleet.versions["hang"]

    started = time.monotonic()
    result = update(box, "install", fleet.bundle("hang"))
    took = time.monotonic() - started
    box.figures["OTA: never READY, install -> rolled back by the updater (s)"] = took
    assert result.returncode == 1, f"{result.stdout}{result.stderr}\n{explain(box)}"  # 1: rolled back
    reason = f"the new release did not reach READY within {READY_TIMEOUT_S} s"
    assert f"update to {broken}: rolled_back ({reason}" in result.stdout, result.stdout
    assert took > READY_TIMEOUT_S

    box.wait_active()
    state = status(box)
    assert last(state)["result"] == "rolled_back" and str(last(state)["reason"]).startswith(reason), state
    assert (state["running"], link(box, "current")) == (good, f"releases/{good}")
    assert running_version(box) == good
    assert "never ready, on purpose" in box.container.journal(UNIT, lines=300)


def test_the_sandboxed_updater_unit_installs_a_release_from_a_signed_manifest(box: Box, fleet: Fleet) -> None:
    """The fleet path, through wattsmart-gateway-updater.service's sandbox (ProtectSystem=strict, one
    capability, seccomp): manifest and bundle served on the box's loopback, stage 100 %."""
    c = box.container
    box.wait_active()
    new = fleet.versions["fleet"]
    site = fleet.folder / "site"
    site.mkdir()
    shutil.move(fleet.folder / "fleet.bundle", site / f"gw-{new}.bundle")
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
    release_tool(
        "manifest",
        "--key",
        fleet.key,
        "--bundle",
        site / f"gw-{new}.bundle",
        "--url",
        f"gw-{new}.bundle",
        "--stage",
        f"100@{since}",
        "--out",
        site / "manifest.json",
    )
    config = box.root / CONFIG.lstrip("/")
    original = config.read_text()
    manifest_url = f"http://127.0.0.1:{FLEET_PORT}/manifest.json"
    try:
        c.sh(
            "systemd-run",
            f"--unit={FLEET_HOST}",
            "--property=DynamicUser=yes",
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            "/mnt/test/ota/site",
            str(FLEET_PORT),
        )
        probe = f"import urllib.request; urllib.request.urlopen({manifest_url!r}, timeout=1)"
        nspawn.wait_until(
            lambda: c.sh("python3", "-c", probe, check=False).returncode == 0,
            30,
            "the fleet host on the box's loopback",
            lambda: c.journal(FLEET_HOST),
        )
        config.write_text(original.replace("\nota:\n", f"\nota:\n  manifest_url: {manifest_url}\n", 1))
        started = time.monotonic()
        c.sh("systemctl", "restart", UPDATER)

        def committed() -> bool:
            state = saved_state(box)
            return state.get("phase") == "idle" and last(state).get("version") == new

        nspawn.wait_until(
            committed, 180, "the updater unit to commit the fleet release", lambda: explain(box)
        )
        box.figures["OTA: updater unit, manifest -> committed (s)"] = time.monotonic() - started
    finally:
        config.write_text(original)
        c.sh("systemctl", "stop", FLEET_HOST, check=False)

    state = status(box)
    assert last(state)["result"] == "committed", f"{state}\n{explain(box)}"
    assert (state["running"], link(box, "current")) == (new, f"releases/{new}")
    box.wait_active()
    assert running_version(box) == new
    log = c.journal(UPDATER, lines=200)
    assert "cohort " in log and f"-> {new}" in log, log
    # it exits after a commit so that systemd starts it again from the new release
    nspawn.wait_until(
        lambda: c.show(UPDATER, "SubState")["SubState"] in ("auto-restart", "running"),
        30,
        "the updater to exit for a restart",
        lambda: c.journal(UPDATER),
    )
    downloads = (box.root / STATE).with_name("downloads")
    assert not downloads.exists() or not any(downloads.iterdir())  # the bundle is not kept
