"""The update state machine as pure transitions: literal times, no files, no processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.ota import machine as m
from app.ota.machine import Phase, UpdateState
from app.ota.settings import OtaSettings
from app.ota.state import FLAG_TTL_S, control_in_force, set_control_in_force

S = OtaSettings(ready_timeout_s=60, healthy_for_s=120, max_trial_boots=2)
T0 = 1_800_000_000.0


def on_trial() -> UpdateState:
    state = UpdateState(known_good="1.0.0")
    for event in (m.Begin("1.1.0", "1.0.0"), m.Staged(), m.Switched()):
        state = m.step(state, event, T0, S)
    assert state.phase is Phase.TRIAL and state.target == "1.1.0"
    return state


def test_commit_needs_ready_and_the_whole_healthy_period() -> None:
    state = m.step(on_trial(), m.Observed(ready=False, failed=False), T0 + 30, S)
    state = m.step(state, m.Observed(ready=True, failed=False), T0 + 40, S)
    assert state.ready_since == T0 + 40
    state = m.step(state, m.Observed(ready=True, failed=False), T0 + 159, S)
    assert state.phase is Phase.TRIAL
    state = m.step(state, m.Observed(ready=True, failed=False), T0 + 160, S)
    assert state.phase is Phase.IDLE and state.known_good == "1.1.0"
    assert state.last == m.Outcome("1.1.0", "1.0.0", "committed", "healthy for 120 s", T0 + 160)


def test_no_ready_within_the_timeout_rolls_back() -> None:
    state = m.step(on_trial(), m.Observed(ready=False, failed=False), T0 + 59, S)
    assert state.phase is Phase.TRIAL
    state = m.step(state, m.Observed(ready=False, failed=False, detail="activating/start"), T0 + 60, S)
    assert state.phase is Phase.ROLLING_BACK
    assert state.reason is not None and "did not reach READY within 60 s" in state.reason
    state = m.step(state, m.RolledBack(), T0 + 61, S)
    assert state.phase is Phase.IDLE and state.known_good == "1.0.0" and state.failed == ("1.1.0",)


def test_leaving_ready_or_failing_rolls_back() -> None:
    ready = m.step(on_trial(), m.Observed(ready=True, failed=False), T0 + 10, S)
    left = m.step(ready, m.Observed(ready=False, failed=False), T0 + 20, S)
    assert left.phase is Phase.ROLLING_BACK and left.reason is not None and "left READY" in left.reason
    crashed = m.step(ready, m.Observed(ready=False, failed=True, detail="failed/failed"), T0 + 20, S)
    assert crashed.phase is Phase.ROLLING_BACK and crashed.reason is not None and "failed" in crashed.reason


def test_crash_loop_rolls_back_a_trial_but_not_a_committed_release() -> None:
    assert m.step(on_trial(), m.CrashLoop(), T0, S).phase is Phase.ROLLING_BACK
    idle = UpdateState(known_good="1.0.0")
    assert m.step(idle, m.CrashLoop(), T0, S) == idle


def test_start_up_in_each_phase() -> None:
    staging = m.step(UpdateState(known_good="1.0.0"), m.Begin("1.1.0", "1.0.0"), T0, S)
    after = m.step(staging, m.Boot("1.0.0"), T0 + 5, S)
    assert after.phase is Phase.IDLE and after.last is not None and after.last.result == "failed"

    switching = m.step(staging, m.Staged(), T0, S)
    assert m.step(switching, m.Boot("1.1.0"), T0 + 5, S).phase is Phase.TRIAL
    assert m.step(switching, m.Boot("1.0.0"), T0 + 5, S).phase is Phase.IDLE

    trial = on_trial()
    again = m.step(trial, m.Boot("1.1.0"), T0 + 500, S)
    assert (again.phase, again.since, again.trial_boots) == (Phase.TRIAL, T0 + 500, 1)
    assert m.step(trial, m.Boot("1.0.0"), T0 + 5, S).phase is Phase.ROLLING_BACK


def test_start_up_adopts_a_release_switched_outside_the_updater() -> None:
    state = m.step(UpdateState(known_good="1.0.0"), m.Boot("1.2.0"), T0, S)
    assert state.known_good == "1.2.0" and state.phase is Phase.IDLE


def test_a_committed_version_leaves_the_failed_list_and_the_list_stays_short() -> None:
    state = UpdateState(known_good="1.0.0", failed=tuple(f"0.{i}" for i in range(m.MAX_FAILED)))
    state = m.step(state, m.Rejected("2.0.0", "bad signature"), T0, S)
    assert len(state.failed) == m.MAX_FAILED and state.failed[-1] == "2.0.0"
    state = m.step(state, m.Begin("2.0.0", "1.0.0"), T0, S)
    state = m.step(m.step(state, m.Staged(), T0, S), m.Switched(), T0, S)
    state = m.step(state, m.CommitRequested(), T0, S)
    assert "2.0.0" not in state.failed and state.known_good == "2.0.0"


def test_the_state_file_round_trips() -> None:
    state = m.step(on_trial(), m.Observed(ready=True, failed=False), T0 + 1, S)
    state = m.step(state, m.ManifestSeen(7), T0 + 2, S)
    assert m.from_json(m.to_json(state)) == state
    done = m.step(state, m.CommitRequested(), T0 + 3, S)
    assert m.from_json(m.to_json(done)) == done
    assert not done.updating and state.updating


def test_a_state_file_with_an_impossible_manifest_serial_does_not_load() -> None:
    raw = m.to_json(UpdateState(manifest_serial=7))
    assert m.from_json(raw).manifest_serial == 7
    for bad in (1e15, 2**63, True, "7", -1):
        with pytest.raises(ValueError, match="manifest_serial"):
            m.from_json({**raw, "manifest_serial": bad})


def test_the_control_flag_expires_with_its_event(tmp_path: Path) -> None:
    flag = tmp_path / "run" / "control-in-force"
    assert not control_in_force(flag, now=T0)
    set_control_in_force(flag, until=T0 + 600)
    os.utime(flag, (T0, T0))  # written at T0 (the gateway rewrites it every FLAG_REFRESH_S)
    assert control_in_force(flag, now=T0 + 200)
    os.utime(flag, (T0 + 500, T0 + 500))
    assert control_in_force(flag, now=T0 + 599)
    assert not control_in_force(flag, now=T0 + 600)  # the event is over
    set_control_in_force(flag, until=T0 + 4294967295)  # a 136-year event
    os.utime(flag, (T0, T0))
    assert control_in_force(flag, now=T0 + FLAG_TTL_S - 1)
    assert not control_in_force(flag, now=T0 + FLAG_TTL_S + 1)  # not refreshed: a crashed gateway's flag
    flag.write_text("garbage")
    os.utime(flag, (T0, T0))
    assert control_in_force(flag, now=T0)  # unreadable counts as in force...
    assert not control_in_force(flag, now=T0 + FLAG_TTL_S + 1)  # ...and expires the same way
    set_control_in_force(flag, until=None)
    assert not flag.exists()


def test_no_answer_from_systemd_is_no_news() -> None:
    ready = m.step(on_trial(), m.Observed(ready=True, failed=False), T0 + 10, S)
    unknown = m.Observed(ready=False, failed=False, detail="systemctl timed out", known=False)
    assert m.step(ready, unknown, T0 + 500, S) == ready
    assert m.step(on_trial(), unknown, T0 + 60, S).phase is Phase.ROLLING_BACK  # still bound by the timeout
