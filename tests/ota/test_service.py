"""The always-running updater service between its manifest polls: it finishes trials others leave.

The service's loop runs on the box's fake clock: its sleeps advance the clock (no real waiting), and
what other processes do meanwhile (an operator's `update install`) happens at a given time.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from app.ota.cli import main as ota_main
from app.ota.fleet_poller import FleetPoller
from app.ota.machine import Phase
from app.ota.settings import OtaSettings
from app.ota.state import update_lock
from app.ota.updater import Updater
from tests.ota.conftest import Box
from tests.ota.fakes import CRASH
from tests.ota.test_install import assert_working

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"


class Stop(Exception):
    """The test's time is up (the service did not finish what it should have)."""


class Meanwhile:
    """The service's sleep: advances the box's clock, running other processes' actions at their time."""

    def __init__(self, box: Box, limit_s: float = 3600.0) -> None:
        self.clock = box.clock
        self.start = box.clock.now
        self.limit = self.start + limit_s
        self.actions: list[tuple[float, Callable[[], None]]] = []
        self.slept: list[float] = []

    def at(self, offset_s: float, action: Callable[[], None]) -> None:
        self.actions.append((self.start + offset_s, action))
        self.actions.sort(key=lambda a: a[0])

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        end = self.clock.now + seconds
        while self.actions and self.actions[0][0] <= end:
            when, action = self.actions.pop(0)
            self.clock.now = max(self.clock.now, when)
            action()
        self.clock.now = max(self.clock.now, end)
        if self.clock.now >= self.limit:
            raise Stop(f"still waiting {self.clock.now - self.start:.0f} s in")

    def elapsed(self) -> float:
        return self.clock.now - self.start


def service(box: Box, meanwhile: Meanwhile) -> FleetPoller:
    """`python -m app.ota poll` as the updater unit runs it (no manifest_url: it only minds trials)."""
    return FleetPoller(
        box.updater(), LFDI, rng=random.Random(1), monotonic=box.clock.time, sleep=meanwhile.sleep
    )


def shows(box: Box) -> int:
    """How often anyone asked systemd about the gateway's state."""
    return sum(1 for argv in box.runner.commands if argv[1:2] == ["show"])


async def test_a_release_installed_with_no_wait_is_committed_by_the_service(box: Box) -> None:
    bundle = box.bundle("1.1.0")
    meanwhile = Meanwhile(box)
    seen: dict[str, float] = {}

    def install_no_wait() -> None:
        assert shows(box) == 0  # idle, the service asked systemd nothing (only stat()s the state file)
        seen["installed"] = box.clock.now
        assert box.updater().install(bundle, watch=False).phase is Phase.TRIAL

    meanwhile.at(1003, install_no_wait)

    await service(box, meanwhile).run_forever()  # returns after the commit: systemd restarts it

    s = box.settings
    state = box.updater().state
    assert state.last is not None and state.last.result == "committed", state
    assert state.last.reason == f"healthy for {s.healthy_for_s:.0f} s"
    # noticed at its next look (within probe_interval_s), then healthy_for_s of watching
    assert state.last.at - seen["installed"] <= s.probe_interval_s + s.healthy_for_s
    assert_working(box, "1.1.0")
    # until then it looked every probe_interval_s, never in a tight loop (the trial's own sleeps are
    # the updater's, on the box's clock)
    assert set(meanwhile.slept) == {s.probe_interval_s}
    assert len(meanwhile.slept) == math.ceil(1003 / s.probe_interval_s)


async def test_a_crash_looping_release_installed_with_no_wait_is_rolled_back_by_the_service(box: Box) -> None:
    bundle = box.bundle("1.1.0", CRASH)
    meanwhile = Meanwhile(box, limit_s=2000)
    meanwhile.at(500, lambda: box.updater().install(bundle, watch=False) and None)

    with pytest.raises(Stop):  # a rollback is no reason to restart: it waits for the next poll
        await service(box, meanwhile).run_forever()

    state = box.updater().state
    assert state.last is not None and state.last.result == "rolled_back", state
    assert state.last.at - (meanwhile.start + 500) <= box.settings.probe_interval_s
    assert_working(box, "1.0.0")


async def test_a_trial_its_own_install_watches_is_left_to_it_until_that_process_goes_away(box: Box) -> None:
    bundle = box.bundle("1.1.0")
    meanwhile = Meanwhile(box)
    watcher = contextlib.ExitStack()  # `update install` without --no-wait: it holds the lock

    def install_and_watch() -> None:
        box.updater().install(bundle, watch=False)
        watcher.enter_context(update_lock(box.settings.state_dir))

    def ssh_session_drops() -> None:
        # the service never probed or touched the trial the install was watching
        assert shows(box) == 0
        state = box.updater().state
        assert (state.phase, state.ready_since) == (Phase.TRIAL, None)
        watcher.close()

    meanwhile.at(100, install_and_watch)
    meanwhile.at(600, ssh_session_drops)

    await service(box, meanwhile).run_forever()

    state = box.updater().state
    assert state.last is not None and state.last.result == "committed"
    assert state.last.at - meanwhile.start == 600 + box.settings.healthy_for_s
    assert_working(box, "1.1.0")


async def test_the_service_restarts_after_another_process_committed_a_release(box: Box) -> None:
    bundle = box.bundle("1.1.0")
    meanwhile = Meanwhile(box)
    meanwhile.at(100, lambda: box.updater().install(bundle) and None)  # watches its own trial

    await service(box, meanwhile).run_forever()  # exits so that it runs the new release's code

    assert meanwhile.elapsed() <= 100 + box.settings.healthy_for_s + box.settings.probe_interval_s
    assert box.updater().state.last is not None
    assert_working(box, "1.1.0")


# --- which configuration `update …` reads ---------------------------------------------------------


def write_config(path: Path, settings: OtaSettings, ota: str) -> Path:
    """A gateway.yaml with an `ota:` section for this box."""
    path.write_text(
        "server:\n"
        "  dcap_url: https://127.0.0.1:8443/dcap\n"
        "  ca_file: ca.pem\n"
        "  cert_file: client.pem\n"
        "  key_file: client.key\n"
        "inverter:\n"
        "  transport: sim\n"
        "ota:\n"
        f"  root: {settings.root}\n"
        f"  state_dir: {settings.state_dir}\n"
        f"  trust_store: {settings.trust_store}\n"
        f"  systemctl: {settings.systemctl}\n" + ota,
        encoding="utf-8",
    )
    return path


def factory(box: Box) -> Callable[[OtaSettings], Updater]:
    """Updaters built from the settings the command line chose, on the box's systemd and clock."""
    return lambda s: Updater(
        s, box.runner, monotonic=box.clock.time, wall_clock=box.clock.time, sleep=box.clock.sleep
    )


def test_install_without_config_reads_the_default_configuration(box: Box) -> None:
    timings = "  ready_timeout_s: 20\n  healthy_for_s: 30\n"
    config = write_config(box.tmp / "gateway.yaml", box.settings, timings)
    start = box.clock.now

    assert ota_main(["install", str(box.bundle("1.1.0"))], factory(box), default_config=config) == 0

    state = box.updater().state
    assert state.last is not None and state.last.reason == "healthy for 30 s"  # not the built-in 600 s
    assert box.clock.now - start == 30
    assert_working(box, "1.1.0")


def test_without_a_default_configuration_the_built_in_settings_apply(
    box: Box, capsys: pytest.CaptureFixture[str]
) -> None:
    s = box.settings
    argv = ["--root", str(s.root), "--state-dir", str(s.state_dir), "--systemctl", s.systemctl]
    assert ota_main(["status", *argv], factory(box), default_config=box.tmp / "missing.yaml") == 0
    assert '"running": "1.0.0"' in capsys.readouterr().out


def test_rollback_and_recover_never_read_the_default_configuration(
    box: Box, capsys: pytest.CaptureFixture[str]
) -> None:
    # a configuration a newer release wrote, which this release cannot read
    config = write_config(box.tmp / "gateway.yaml", box.settings, "  new_key_of_a_later_release: 1\n")
    box.updater().install(box.bundle("1.1.0", CRASH), watch=False)
    s = box.settings
    argv = ["--root", str(s.root), "--state-dir", str(s.state_dir), "--trust-store", str(s.trust_store)]
    argv += ["--systemctl", s.systemctl]

    assert ota_main(["install", str(box.bundle("1.2.0")), *argv], factory(box), default_config=config) == 2
    assert "new_key_of_a_later_release" in capsys.readouterr().err
    assert ota_main(["rollback", "--crash-loop", *argv], factory(box), default_config=config) == 0
    assert ota_main(["recover", *argv], factory(box), default_config=config) == 1  # 1: last rolled back
    assert capsys.readouterr().err == ""

    state = box.updater().state
    assert state.last is not None and state.last.result == "rolled_back"
    assert_working(box, "1.0.0")
    # status only reads: it warns and still shows the state
    assert ota_main(["status", *argv], factory(box), default_config=config) == 0
    out, err = capsys.readouterr()
    assert "new_key_of_a_later_release" in err and '"running": "1.0.0"' in out
