"""Device side: install a bundle, commit a healthy release, refuse bad ones, roll back failing ones."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from app.cli import main
from app.ota.cli import main as ota_main
from app.ota.errors import (
    IntegrityError,
    NothingToDo,
    ReleaseBroken,
    SignatureError,
    UnknownKeyError,
    VersionRefused,
)
from app.ota.keys import TrustStore, load_trust_store
from app.ota.machine import Phase
from app.ota.runner import CommandResult
from app.ota.state import is_updating, update_lock
from app.ota.updater import Updater
from tests.ota.conftest import Box
from tests.ota.fakes import BROKEN, CRASH, NEVER_READY, FakeRunner
from wattsmart_release.signing import generate_key


def assert_working(box: Box, version: str) -> None:
    """`current` points at a complete `version` whose command runs, and systemd runs that release."""
    releases = box.releases
    assert releases.linked() == version
    assert releases.complete(version)
    command = box.settings.root / "current" / "bin" / "wattsmart-gateway"
    done = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == version
    assert box.running() == version
    assert not box.updater().updating


def rewrite_member(bundle: Path, name: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite one member of a bundle in place, keeping everything else (the signature too)."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(bundle) as tar:
        for info in tar:
            f = tar.extractfile(info)
            assert f is not None
            data = f.read()
            members.append((info, change(data) if info.name == name else data))
    with tarfile.open(bundle, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_healthy_release_is_committed_after_the_healthy_period(box: Box) -> None:
    start = box.clock.now
    state = box.updater().install(box.bundle("1.1.0"))

    assert state.phase is Phase.IDLE
    assert state.last is not None and state.last.result == "committed"
    assert (state.known_good, state.last.from_version) == ("1.1.0", "1.0.0")
    assert box.clock.now - start >= box.settings.healthy_for_s
    assert_working(box, "1.1.0")
    assert box.releases.linked(box.releases.previous) == "1.0.0"


def test_a_tampered_manifest_fails_the_signature_check(box: Box) -> None:
    bundle = box.bundle("1.1.0")
    rewrite_member(
        bundle, "manifest.json", lambda b: b.replace(b'"min_version": null', b'"min_version": "0"')
    )

    with pytest.raises(SignatureError):
        box.updater().install(bundle)
    assert not (box.settings.root / "releases" / "1.1.0").exists()
    assert_working(box, "1.0.0")


def test_a_key_the_box_does_not_trust_is_refused(box: Box) -> None:
    with pytest.raises(UnknownKeyError, match="unknown key 'rogue'"):
        box.updater().install(box.bundle("1.1.0", key=generate_key(), key_id="rogue"))
    # a foreign key claiming the fleet key's id does not verify either
    with pytest.raises(SignatureError):
        box.updater().install(box.bundle("1.1.0", key=generate_key()))
    assert_working(box, "1.0.0")


def test_downgrade_is_refused_unless_forced(box: Box) -> None:
    bundle = box.bundle("0.9.0")
    with pytest.raises(VersionRefused, match="older"):
        box.updater().install(bundle)
    assert_working(box, "1.0.0")

    state = box.updater().install(bundle, force=True)
    assert state.last is not None and state.last.result == "committed"
    assert_working(box, "0.9.0")


def test_a_box_older_than_the_minimum_version_refuses(box: Box) -> None:
    with pytest.raises(VersionRefused, match=r"needs at least 1\.5\.0"):
        box.updater().install(box.bundle("2.0.0", min_version="1.5.0"))
    with pytest.raises(VersionRefused, match="already the running"):
        box.updater().install(box.bundle("1.0.0"), force=True)


def test_a_wheel_that_differs_from_the_manifest_is_refused_and_cleaned_up(box: Box) -> None:
    bundle = box.bundle("1.1.0")
    name = "wheels/wattsmart_gateway-1.1.0-py3-none-any.whl"
    rewrite_member(bundle, name, lambda b: b[:-1] + bytes([b[-1] ^ 1]))

    with pytest.raises(IntegrityError, match="differs from the signed manifest"):
        box.updater().install(bundle)
    state = box.updater().state
    assert state.phase is Phase.IDLE and state.last is not None and state.last.result == "failed"
    assert state.failed == ("1.1.0",)
    assert not (box.settings.root / "releases" / "1.1.0").exists()
    assert_working(box, "1.0.0")


def test_a_release_that_cannot_even_start_never_gets_switched_to(box: Box) -> None:
    with pytest.raises(ReleaseBroken, match="does not start"):
        box.updater().install(box.bundle("1.1.0", BROKEN))
    assert box.systemd.load()["starts"] == ["1.0.0"]
    assert box.updater().state.failed == ("1.1.0",)
    assert_working(box, "1.0.0")


def test_a_release_that_never_gets_ready_is_rolled_back(box: Box) -> None:
    state = box.updater().install(box.bundle("1.1.0", NEVER_READY))

    assert state.last is not None and state.last.result == "rolled_back"
    assert "did not reach READY within 60 s" in state.last.reason
    assert state.failed == ("1.1.0",)
    assert box.systemd.load()["starts"] == ["1.0.0", "1.1.0", "1.0.0"]
    assert not (box.settings.root / "releases" / "1.1.0").exists()
    assert_working(box, "1.0.0")


def test_a_crash_looping_release_is_rolled_back_by_the_watching_updater(box: Box) -> None:
    state = box.updater().install(box.bundle("1.1.0", CRASH))

    assert state.last is not None and state.last.result == "rolled_back"
    assert "failed" in state.last.reason
    assert_working(box, "1.0.0")
    # systemd's OnFailure= fires too; the rollback entry finds nothing left to do
    done = box.systemd.settle(box.rollback_entry())
    assert done is not None
    assert done.returncode == 0, done.stderr
    assert_working(box, "1.0.0")


def test_a_crash_looping_release_is_rolled_back_by_the_onfailure_entry(box: Box) -> None:
    # nobody watches the trial (the operator's ssh session dropped): systemd's OnFailure= must act
    state = box.updater().install(box.bundle("1.1.0", CRASH), watch=False)
    assert state.phase is Phase.TRIAL
    assert is_updating(box.settings.state_dir)

    done = box.systemd.settle(box.rollback_entry())

    assert done is not None
    assert done.returncode == 0, done.stderr
    state = box.updater().state
    assert state.last is not None and state.last.result == "rolled_back"
    assert state.last.reason == "crash loop (OnFailure)"
    assert_working(box, "1.0.0")


def test_updates_wait_while_a_grid_control_event_is_in_force(box: Box) -> None:
    box.control.extend([True, True, True])
    state = box.updater().install(box.bundle("1.1.0"))

    assert box.clock.slept[:3] == [30, 30, 30]
    assert box.control == []
    assert state.last is not None and state.last.result == "committed"
    assert_working(box, "1.1.0")


def test_a_signed_key_rotation_is_adopted_on_commit(box: Box) -> None:
    new_key = generate_key()
    statement = box.tmp / "rotation.json"
    TrustStore(2, {"fleet-2027": new_key.public_key()}, frozenset({"fleet-2026"})).save(statement)

    box.updater().install(box.bundle("1.1.0", trust=statement))

    trust = load_trust_store(box.settings.trust_store)
    assert (trust.serial, sorted(trust.keys), sorted(trust.revoked)) == (2, ["fleet-2027"], ["fleet-2026"])
    with pytest.raises(UnknownKeyError, match="revoked"):
        box.updater().verify(box.bundle("1.2.0"))
    assert box.updater().verify(box.bundle("1.2.0", key=new_key, key_id="fleet-2027")).key_id == "fleet-2027"


def test_status_command_shows_the_state(box: Box, capsys: pytest.CaptureFixture[str]) -> None:
    box.updater().install(box.bundle("1.1.0"))
    s = box.settings
    assert main(["update", "status", "--root", str(s.root), "--state-dir", str(s.state_dir)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] == "1.1.0" and status["previous"] == "1.0.0"
    assert status["last"]["result"] == "committed" and status["updating"] is False


def test_the_onfailure_entry_leaves_a_watched_trial_to_its_watcher(box: Box) -> None:
    box.updater().install(box.bundle("1.1.0", CRASH), watch=False)
    with update_lock(box.settings.state_dir), pytest.raises(NothingToDo, match="watching"):
        box.updater().rollback("crash loop", crash_loop=True, lock_wait_s=0.1)
    assert box.updater().resume().last is not None
    assert_working(box, "1.0.0")


class ScriptedShow(FakeRunner):
    """The fake systemd, except that `systemctl show` answers from a script (one answer per look)."""

    def __init__(self, box: Box, answers: list[tuple[str, str, int]]) -> None:
        super().__init__(box.systemd)
        self.answers = answers

    def run(self, argv: Sequence[str], timeout_s: float = 600.0) -> CommandResult:
        if Path(argv[0]).name == "systemctl" and argv[1] == "show":
            active, sub, restarts = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return CommandResult(0, f"ActiveState={active}\nSubState={sub}\nNRestarts={restarts}\nResult=x\n")
        return super().run(argv, timeout_s)


def test_a_restart_after_the_counter_was_reset_still_counts(box: Box) -> None:
    # first look before our restart job ran (old count 2), then systemd zeroes it, then one crash
    answers = [("active", "running", 2), ("active", "running", 0), ("active", "running", 1)]
    updater = Updater(
        box.settings, ScriptedShow(box, answers), monotonic=box.clock.time, sleep=box.clock.sleep
    )

    state = updater.install(box.bundle("1.1.0"))

    assert state.last is not None and state.last.result == "rolled_back"
    assert "1 restarts" in state.last.reason


def test_trials_are_timed_by_the_monotonic_clock_and_stamped_with_the_time_of_day(box: Box) -> None:
    wall = [1_000.0]  # a Pi without RTC before NTP...

    def sleep(seconds: float) -> None:
        box.clock.sleep(seconds)
        wall[0] = 1_800_000_000.0  # ...then NTP steps the wall clock by decades mid-trial

    updater = Updater(
        box.settings, box.runner, monotonic=box.clock.time, wall_clock=lambda: wall[0], sleep=sleep
    )
    start = box.clock.now
    state = updater.install(box.bundle("1.1.0"))

    assert state.last is not None and state.last.result == "committed"
    assert box.clock.now - start == box.settings.healthy_for_s
    assert state.last.at == 1_800_000_000.0


def test_the_updater_service_finishes_a_trial_even_before_commissioning(box: Box) -> None:
    box.updater().install(box.bundle("1.1.0", NEVER_READY), watch=False)
    s = box.settings
    argv = ["poll", "--root", str(s.root), "--state-dir", str(s.state_dir), "--systemctl", s.systemctl]
    argv += ["--trust-store", str(s.trust_store)]

    assert (
        ota_main(argv, lambda _: box.updater()) == 2
    )  # no certificate, so no LFDI yet: systemd tries again later

    state = box.updater().state
    assert state.last is not None and state.last.result == "rolled_back"
    assert_working(box, "1.0.0")
