"""A power cut at any point of an install ends, after `recover()` at start-up, on a working release."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ota import machine as m
from app.ota.bundle import verify_bundle
from app.ota.keys import TrustStore, load_trust_store
from app.ota.machine import Phase
from tests.ota.conftest import Box
from tests.ota.test_install import assert_working
from wattsmart_release.signing import generate_key

STEPS = ["begin", "unpack", "staged", "link_previous", "link_current", "switched", "restart"]


def boot(box: Box) -> None:
    """Start-up after the cut: the updater recovers first (ordered before the gateway), then systemd
    starts the gateway from `current`, then the updater watches any trial to its end."""
    state = box.updater().recover()
    box.systemd.handle(["restart", "--no-block", box.settings.service])
    if state.phase is Phase.TRIAL:
        box.updater().resume()


def run_steps_until(box: Box, bundle: Path, cut_before: int) -> None:
    updater = box.updater()
    manifest = verify_bundle(bundle, updater.trust())
    steps = updater.steps(bundle, manifest)
    assert [name for name, _ in steps] == STEPS
    for _, run in steps[:cut_before]:
        run()


@pytest.mark.parametrize("done", range(len(STEPS) + 1), ids=["none", *(f"after-{s}" for s in STEPS)])
def test_power_cut_after_each_step(box: Box, done: int) -> None:
    run_steps_until(box, box.bundle("1.1.0"), done)

    boot(box)

    state = box.updater().state
    assert state.phase is Phase.IDLE
    flipped = done >= STEPS.index("link_current") + 1
    assert_working(box, "1.1.0" if flipped else "1.0.0")
    if flipped:
        assert state.last is not None and state.last.result == "committed"
    elif done >= 1:
        assert state.last is not None and state.last.result == "failed"
        assert "interrupted" in state.last.reason
        assert state.failed == ()  # a power cut says nothing about the release: it is offered again
        assert not (box.settings.root / "releases" / "1.1.0").exists()


def test_power_cut_inside_the_link_flip_leaves_the_old_link(box: Box) -> None:
    run_steps_until(box, box.bundle("1.1.0"), STEPS.index("link_current"))
    # the new link was made under its temporary name, the rename never happened
    (box.settings.root / "current.new").symlink_to("releases/1.1.0")

    boot(box)

    assert not (box.settings.root / "current.new").exists()
    assert_working(box, "1.0.0")


def test_power_cut_mid_unpack_leaves_a_half_folder_that_is_removed(box: Box) -> None:
    run_steps_until(box, box.bundle("1.1.0"), 1)
    half = box.settings.root / "releases" / "1.1.0" / "lib"
    half.mkdir(parents=True)

    boot(box)

    assert not half.exists()
    assert_working(box, "1.0.0")


def test_a_release_that_keeps_cutting_power_during_its_trial_is_rolled_back(box: Box) -> None:
    box.updater().install(box.bundle("1.1.0"), watch=False)
    for _ in range(box.settings.max_trial_boots):
        assert box.updater().recover().phase is Phase.TRIAL

    state = box.updater().recover()
    box.systemd.handle(["restart", "--no-block", box.settings.service])

    assert state.last is not None and state.last.result == "rolled_back"
    assert "restarted 3 times" in state.last.reason
    assert_working(box, "1.0.0")


def test_a_broken_current_link_is_repaired_at_start_up(box: Box) -> None:
    current = box.settings.root / "current"
    current.unlink()
    current.symlink_to("releases/9.9.9")  # dangling

    boot(box)

    assert_working(box, "1.0.0")


def test_power_cut_halfway_through_a_rollback_finishes_it(box: Box) -> None:
    updater = box.updater()
    updater.install(box.bundle("1.1.0", "never-ready"), watch=False)
    updater.apply(m.Observed(ready=False, failed=True, detail="failed/failed"))
    updater.releases.point(updater.releases.current, "1.0.0")  # the cut came after the link went back

    boot(box)

    state = box.updater().state
    assert state.last is not None and state.last.result == "rolled_back"
    assert_working(box, "1.0.0")


def test_power_cut_between_commit_and_key_rotation_still_rotates(box: Box) -> None:
    statement = box.tmp / "rotation.json"
    TrustStore(5, {"fleet-2027": generate_key().public_key()}).save(statement)
    updater = box.updater()
    updater.install(box.bundle("1.1.0", trust=statement), watch=False)
    updater.apply(m.CommitRequested())  # committed in the state file; the rotation had not run yet

    boot(box)

    assert load_trust_store(box.settings.trust_store).serial == 5
    assert_working(box, "1.1.0")
