"""OS A/B updates (app/ota/osupdate.py) on a simulated box: the real boot scripts, the real machine.

The box is a boot-partition folder driven by the image's real RAUC backend (ab-boot) and the
initramfs's real slot selector (each power-on runs it); `rauc` and `systemctl` are a small runner
that does what they would to those files (the real RAUC and systemd run in `make image-test-ab`).
Time is the fake clock: the trial's READY timeout and healthy period pass without waiting.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from app.ota import machine
from app.ota.errors import BundleRejected, UpdateBusy
from app.ota.machine import Phase, UpdateState
from app.ota.osupdate import OsPaths, OsUpdater, slot_of
from app.ota.runner import CommandResult
from app.ota.settings import OtaSettings
from tests.image.test_ab_boot import BACKEND, SHELL, Box
from tests.ota.fakes import Clock

SETTINGS = OtaSettings(ready_timeout_s=120, healthy_for_s=60, probe_interval_s=5, control_retry_s=60)


class SimBox(Box):
    """Box plus the slots' contents, the gateway's behaviour per slot, and rauc/systemctl."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.slots: dict[str, str | None] = {"A": "1.0.0", "B": None}
        self.ready_in: dict[str, bool] = {"A": True, "B": True}
        self.image_file = tmp_path / "wattsmart-image"
        self.reboots = 0
        self.calls_seen: list[list[str]] = []
        self.booted = "?"

    def power_on(self) -> tuple[str, str]:
        booted, root = super().power_on()
        self.booted = booted
        # the image inside a bundle names its own version, which need not be the bundle's
        self.image_file.write_text(f"IMAGE_VERSION={(self.slots[booted] or '').split('+')[0]}\n")
        return booted, root

    def backend(self, *args: str) -> None:
        env = {"PATH": "/usr/bin:/bin", "WSG_AB_DIR": str(self.boot)}
        subprocess.run([SHELL, str(BACKEND), *args], check=True, env=env, capture_output=True)

    def run(self, argv: Sequence[str], timeout_s: float = 600.0) -> CommandResult:
        argv = list(argv)
        self.calls_seen.append(argv)
        match argv:
            case ["rauc", "info", "--output-format=json", bundle]:
                raw = json.loads(Path(bundle).read_text())
                if not raw.get("signed"):
                    return CommandResult(1, "", "signature verification failed: unable to get local issuer")
                return CommandResult(0, json.dumps({"version": raw["version"], "compatible": "wsg"}))
            case ["rauc", "install", bundle]:
                target = "B" if self.booted == "A" else "A"
                self.backend("set-state", target, "bad")
                self.slots[target] = json.loads(Path(bundle).read_text())["version"]
                self.backend("set-primary", target)
                return CommandResult(0, "Installing done.")
            case ["rauc", "status", how, "booted"]:
                verb = {
                    "mark-good": ("set-state", self.booted, "good"),
                    "mark-bad": ("set-state", self.booted, "bad"),
                }
                self.backend(*verb.get(how, ("set-primary", self.booted)))
                return CommandResult(0)
            case ["systemctl", "show", *_]:
                if self.ready_in[self.booted]:
                    return CommandResult(
                        0, "ActiveState=active\nSubState=running\nNRestarts=0\nResult=success\n"
                    )
                return CommandResult(
                    0, "ActiveState=activating\nSubState=start\nNRestarts=0\nResult=success\n"
                )
            case ["systemctl", "reboot"]:
                self.reboots += 1
                return CommandResult(0)
        raise AssertionError(argv)

    def updater(self, clock: Clock | None = None, control: bool = False) -> OsUpdater:
        """A fresh updater process (as after a boot), with a fresh monotonic clock."""
        clock = clock or Clock()
        paths = OsPaths(
            state_dir=self.boot / "wattsmart-os",
            lock_dir=self.rundir / "lock",
            booted_file=self.rundir / "booted",
            image_file=self.image_file,
        )
        return OsUpdater(
            SETTINGS, paths, self, control_in_force=lambda: control,
            monotonic=clock.time, wall_clock=clock.time, sleep=clock.sleep,
        )  # fmt: skip


@pytest.fixture
def box(tmp_path: Path) -> SimBox:
    return SimBox(tmp_path)


def bundle(tmp_path: Path, version: str, signed: bool = True) -> Path:
    path = tmp_path / f"os-{version}.raucb"
    path.write_text(json.dumps({"version": version, "signed": signed}))
    return path


def test_update_to_b_is_committed_after_the_health_gate(box: SimBox, tmp_path: Path) -> None:
    assert box.power_on()[0] == "A"
    assert box.updater().boot().phase is Phase.IDLE  # a plain boot re-arms slot A
    state = box.updater().install(bundle(tmp_path, "2.0.0"))
    assert (state.phase, state.target, state.known_good) == (Phase.TRIAL, "B:2.0.0", "A:1.0.0")
    assert box.reboots == 1
    assert box.power_on()[0] == "B"
    clock = Clock()
    state = box.updater(clock).boot()
    assert state.phase is Phase.IDLE
    assert state.last is not None and (state.last.result, state.last.version) == ("committed", "B:2.0.0")
    assert state.known_good == "B:2.0.0"
    assert (
        SETTINGS.healthy_for_s <= sum(clock.slept) <= SETTINGS.healthy_for_s + 2 * SETTINGS.probe_interval_s
    )
    assert "B_LEFT=3" in box.env()  # marked good: re-armed
    assert [box.power_on()[0] for _ in range(3)] == ["B", "B", "B"]


def test_never_ready_is_marked_bad_and_the_old_slot_finishes_the_rollback(
    box: SimBox, tmp_path: Path
) -> None:
    box.power_on()
    box.updater().install(bundle(tmp_path, "2.0.0"))
    box.ready_in["B"] = False
    assert box.power_on()[0] == "B"
    clock = Clock()
    state = box.updater(clock).boot()
    assert state.phase is Phase.ROLLING_BACK
    assert "did not reach READY within 120 s" in (state.reason or "")
    assert box.reboots == 2  # the install's and the rollback's
    assert ["rauc", "status", "mark-bad", "booted"] in box.calls_seen
    assert box.power_on()[0] == "A"  # B has no attempts left
    state = box.updater().boot()
    assert state.phase is Phase.IDLE
    assert state.last is not None and state.last.result == "rolled_back"
    assert state.known_good == "A:1.0.0" and "B:2.0.0" in state.failed
    assert box.env().startswith("ORDER=A B")  # mark-active: A is primary again
    report = box.updater().pending_report("LFDI")
    assert report is not None and (report["kind"], report["result"], report["version"]) == (
        "os", "rolled_back", "B:2.0.0"
    )  # fmt: skip
    box.updater().mark_reported()
    assert box.updater().pending_report("LFDI") is None


def test_a_slot_that_never_boots_falls_back_and_is_rolled_back(box: SimBox, tmp_path: Path) -> None:
    box.power_on()
    box.updater().install(bundle(tmp_path, "2.0.0"))
    assert [box.power_on()[0] for _ in range(3)] == ["B", "B", "B"]  # kernel panics: no userspace
    assert box.power_on()[0] == "A"
    state = box.updater().boot()
    assert state.last is not None and state.last.result == "rolled_back"
    assert state.phase is Phase.IDLE and box.reboots == 1


def test_power_cut_after_the_slot_was_written_still_gets_a_trial(box: SimBox, tmp_path: Path) -> None:
    box.power_on()
    updater = box.updater()
    updater.apply = _cut_after_staging(updater)  # type: ignore[method-assign]
    with pytest.raises(PowerCut):
        updater.install(bundle(tmp_path, "2.0.0"))
    assert box.updater().state.phase is Phase.STAGING and box.slots["B"] == "2.0.0"
    box.ready_in["B"] = False  # a slot that would be committed without a trial must not be
    assert box.power_on()[0] == "B"
    state = box.updater().boot()
    assert (
        state.phase is Phase.ROLLING_BACK and ["rauc", "status", "mark-good", "booted"] not in box.calls_seen
    )


def test_power_cut_while_the_slot_is_written_fails_the_update(box: SimBox, tmp_path: Path) -> None:
    box.power_on()
    updater = box.updater()
    updater.apply = _cut_after_staging(updater)  # type: ignore[method-assign]
    box.backend("set-state", "B", "bad")  # RAUC had begun: the slot is bad until written
    box.slots["B"] = "2.0.0"
    updater.runner = _CutInstall(box)
    with pytest.raises(PowerCut):
        updater.install(bundle(tmp_path, "2.0.0"))
    assert box.power_on()[0] == "A"
    state = box.updater().boot()
    assert state.phase is Phase.IDLE and state.last is not None and state.last.result == "failed"


class PowerCut(Exception):
    """The power went away here."""


class _CutInstall:
    """`rauc install` that never returns (the power goes mid-write)."""

    def __init__(self, box: SimBox) -> None:
        self.box = box

    def run(self, argv: Sequence[str], timeout_s: float = 600.0) -> CommandResult:
        if list(argv[:2]) == ["rauc", "install"]:
            raise PowerCut
        return self.box.run(argv, timeout_s)


def _cut_after_staging(updater: OsUpdater) -> Callable[[machine.Event], UpdateState]:
    """An `apply` that loses power when asked to record anything after STAGING."""
    real = updater.apply

    def apply(event: machine.Event) -> UpdateState:
        if isinstance(event, machine.Staged):
            raise PowerCut
        return real(event)

    return apply


def test_refused_bundle_changes_nothing(box: SimBox, tmp_path: Path) -> None:
    box.power_on()
    before = box.env()
    with pytest.raises(BundleRejected, match="signature"):
        box.updater().install(bundle(tmp_path, "2.0.0", signed=False))
    assert box.env() == before and box.slots["B"] is None and box.reboots == 0
    assert box.updater().state.phase is Phase.IDLE


def test_no_second_install_during_a_trial(box: SimBox, tmp_path: Path) -> None:
    box.power_on()
    box.updater().install(bundle(tmp_path, "2.0.0"))
    with pytest.raises(UpdateBusy):
        box.updater().install(bundle(tmp_path, "2.0.1"))


def test_grid_control_event_holds_the_update_back(box: SimBox, tmp_path: Path) -> None:
    box.power_on()
    clock = Clock()
    start = clock.now
    events = iter([True, True, True, False, False, False])
    updater = box.updater(clock)
    updater.app.control_in_force = lambda: next(events)
    updater.install(bundle(tmp_path, "2.0.0"))
    # nothing was written before the event ended: three looks at the flag, a minute apart
    assert clock.now - start == 2 * SETTINGS.control_retry_s
    assert box.slots["B"] == "2.0.0" and box.reboots == 1


def test_a_bundle_version_other_than_the_images_is_followed_by_slot(box: SimBox, tmp_path: Path) -> None:
    box.power_on()
    box.updater().install(bundle(tmp_path, "1.0.0+rebuilt"))
    assert box.power_on()[0] == "B"
    state = box.updater().boot()
    assert state.last is not None and (state.last.result, state.last.version) == (
        "committed",
        "B:1.0.0+rebuilt",
    )
    assert box.updater().running() == "B:1.0.0+rebuilt"


def test_slot_of() -> None:
    assert slot_of("B:2.0.0") == "B"
    assert slot_of("1.0.0") is None and slot_of(None) is None and slot_of("C:1") is None
