"""The I/O shell around the state machine: install a bundle, watch the trial, commit or roll back, recover.

Every step first records in the state file what it is about to do, so `recover()` at start-up can
finish or undo it after a power cut at any point.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from app.ota import machine
from app.ota.bundle import TRUST, BundleManifest, extract_bundle, read_manifest_json, verify_bundle
from app.ota.errors import (
    BundleRejected,
    InstallFailed,
    NothingToDo,
    OtaError,
    ReleaseBroken,
    UpdateBusy,
    VersionRefused,
)
from app.ota.jsonfile import write_json
from app.ota.keys import TrustStore, TrustStoreError, check_rotation, load_trust_store
from app.ota.machine import Phase, UpdateState
from app.ota.release_dirs import MARKER, TRUST_STATEMENT, Releases, create_venv, write_marker
from app.ota.runner import CommandRunner, Service, ServiceStatus, SubprocessRunner
from app.ota.settings import OtaSettings
from app.ota.state import StateFile, update_lock
from app.ota.version import Version, is_version

_LOGGER = logging.getLogger(__name__)

Step = tuple[str, Callable[[], None]]
#: how long the crash-loop rollback entry waits for a running updater (which then handles it itself)
ROLLBACK_LOCK_WAIT_S = 10.0
#: free space needed, as a multiple of the bundled files' size (the wheels plus what they unpack to)
SPACE_FACTOR = 4
#: root's record of the anti-rollback floor, in the state folder
FLOOR_FILE = "security-floor.json"


def step_and_save(
    state_file: StateFile,
    event: machine.Event,
    now: float,
    wall_clock: Callable[[], float],
    settings: OtaSettings,
    *,
    what: str,
) -> UpdateState:
    """One step of the update machine (app or OS: `what` names it in the log), saved if it changed."""
    old = state_file.load()
    new = machine.step(old, event, now, settings)
    if new.last is not None and new.last is not old.last:
        # the machine times with the monotonic clock; reports want the time of day
        new = dataclasses.replace(new, last=dataclasses.replace(new.last, at=wall_clock()))
    if new != old:
        state_file.save(new)
    if new.phase is not old.phase:
        _LOGGER.info("%s %s: %s -> %s", what, new.target or old.target, old.phase, new.phase)
        if new.phase is Phase.IDLE and new.last is not None:
            log = _LOGGER.info if new.last.result == "committed" else _LOGGER.error
            log("%s to %s %s: %s", what, new.last.version, new.last.result, new.last.reason)
    return new


class Updater:
    """Installs, watches, commits and rolls back releases under `settings.root`."""

    def __init__(
        self,
        settings: OtaSettings,
        runner: CommandRunner | None = None,
        *,
        control_in_force: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.runner = runner or SubprocessRunner()
        self.releases = Releases(settings.root)
        self.service = Service(self.runner, settings.service, settings.systemctl)
        self.state_file = StateFile(settings.state_dir)
        self.control_in_force = control_in_force
        self._monotonic, self._wall_clock, self._sleep = monotonic, wall_clock, sleep
        #: when (self._monotonic) an update first found a grid-control event in force; None when none was
        self._control_since: float | None = None

    # --- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> UpdateState:
        """The saved update state."""
        return self.state_file.load()

    @property
    def updating(self) -> bool:
        """Whether an update is under way (drives the "updating — do not power off" LED)."""
        return self.state.updating

    def apply(self, event: machine.Event) -> UpdateState:
        """Feed one event to the state machine at the current time and save the result."""
        return step_and_save(
            self.state_file, event, self._monotonic(), self._wall_clock, self.settings, what="update"
        )

    def running_version(self) -> str | None:
        """The version `current` points at (falls back to the state file)."""
        return self.releases.linked() or self.state.known_good

    # --- verification ---------------------------------------------------------------------------

    def trust(self) -> TrustStore:
        """The box's trust store."""
        return load_trust_store(self.settings.trust_store)

    def verify(self, bundle: Path, force: bool = False) -> BundleManifest:
        """Check signature and version rules; raise BundleRejected (or a subclass) when refused."""
        manifest = verify_bundle(bundle, self.trust())
        version, running = manifest.version, self.running_version()
        floor = self.security_floor()
        if floor is not None and version < floor:
            # no --force: the floor says the releases below it have a hole that must not come back
            raise VersionRefused(
                f"{version} is below this box's security floor {floor} (--force cannot lower it)"
            )
        if running is not None:
            current = Version(running)
            if manifest.min_version is not None and current < manifest.min_version:
                needs = manifest.min_version
                raise VersionRefused(f"{version} needs at least {needs}; this box runs {current}")
            if version == current:
                raise VersionRefused(f"{version} is already the running release")
            if version < current and not force:
                raise VersionRefused(f"{version} is older than the running {current}; --force downgrades")
        return manifest

    # --- anti-rollback floor ----------------------------------------------------------------------

    def security_floor(self) -> Version | None:
        """The lowest version this box may install: root's record, raised by committed bundles."""
        floors = [self._stored_floor(), self._release_floor(self.state.known_good)]
        present = [f for f in floors if f is not None]
        return max(present) if present else None

    def _stored_floor(self) -> Version | None:
        path = self.settings.state_dir / FLOOR_FILE
        try:
            return Version(json.loads(path.read_bytes())["floor"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # root's own file, written atomically: disk damage. The committed release's floor still holds.
            _LOGGER.error("%s is unreadable (%r); using the committed release's floor", path, exc)
            return None

    def _release_floor(self, version: str | None) -> Version | None:
        """The floor a committed release's bundle carried (kept in its folder's marker)."""
        if version is None or not is_version(version):
            return None
        try:
            raw = json.loads((self.releases.path(version) / MARKER).read_bytes()).get("security_floor")
            return Version(raw) if raw else None
        except (OSError, ValueError, TypeError, AttributeError):
            return None

    def _raise_floor(self, version: str | None) -> None:
        """After a commit (or at boot, after a power cut right after one): adopt its bundle's floor."""
        new = self._release_floor(version)
        old = self._stored_floor()
        if new is None or (old is not None and new <= old):
            return
        try:
            write_json(self.settings.state_dir / FLOOR_FILE, {"floor": str(new)})
        except OSError as exc:
            _LOGGER.error("cannot record the security floor %s: %s", new, exc.strerror or exc)
            return
        _LOGGER.warning("security floor raised to %s: no release below it installs here any more", new)

    # --- install --------------------------------------------------------------------------------

    def install(self, bundle: Path, force: bool = False, watch: bool = True) -> UpdateState:
        """Verify, unpack, switch and restart; with `watch`, also wait for the commit or rollback."""
        with update_lock(self.settings.state_dir):
            if self.state.phase is not Phase.IDLE:
                raise UpdateBusy(f"an update is {self.state.phase} (run recover, or wait for it)")
            manifest = self.verify(bundle, force)
            for _name, run in self.steps(bundle, manifest):
                run()
            if watch:
                return self.watch()
            return self.state

    def steps(self, bundle: Path, manifest: BundleManifest) -> list[Step]:
        """The install steps in order; a power cut between any two is recovered by `recover()`."""
        version = str(manifest.version)

        def begin() -> None:
            self._wait_for_control("unpacking")
            self.apply(machine.Begin(version, self.releases.linked()))

        def unpack() -> None:
            try:
                self._stage(bundle, manifest)
            except OtaError as exc:
                self.apply(machine.StageFailed(str(exc), permanent=isinstance(exc, BundleRejected)))
                self._discard(version)
                raise

        def staged() -> None:
            self.apply(machine.Staged())

        def link_previous() -> None:
            # the known-good release becomes `previous`: what the OnFailure rollback unit runs from
            known_good = self.state.known_good or self.releases.linked()
            if known_good is not None and known_good != version:
                self.releases.point(self.releases.previous, known_good)

        def link_current() -> None:
            self._wait_for_control("switching")
            self.releases.point(self.releases.current, version)
            self._control_since = None  # the next update waits afresh

        def switched() -> None:
            self.apply(machine.Switched())

        def restart() -> None:
            self.service.restart()

        return [
            ("begin", begin),
            ("unpack", unpack),
            ("staged", staged),
            ("link_previous", link_previous),
            ("link_current", link_current),
            ("switched", switched),
            ("restart", restart),
        ]

    def _stage(self, bundle: Path, manifest: BundleManifest) -> None:
        version = str(manifest.version)
        folder = self.releases.path(version)
        self._check_space(manifest)
        if folder.exists():
            if self.releases.linked(self.releases.previous) == version:
                self.releases.previous.unlink()
            shutil.rmtree(folder)
        staging = self.releases.staging(version)
        shutil.rmtree(staging, ignore_errors=True)
        extract_bundle(bundle, manifest, staging)
        _LOGGER.info("installing %s into %s", version, folder)
        # the new venv sees Debian's packages exactly when the running one does (RPi GPIO on Pi OS)
        site = self.releases.system_site_packages(self.releases.linked())
        create_venv(self.runner, folder, staging / "wheels", manifest.requirement, site)
        self._preflight(version)
        if manifest.has_trust_statement:
            self._check_statement(staging / TRUST, version)
            shutil.copyfile(staging / TRUST, folder / TRUST_STATEMENT)
        write_marker(folder, read_manifest_json(manifest))
        # the wheels are installed; keeping them would double the space each release takes
        shutil.rmtree(staging)

    def _check_statement(self, statement: Path, version: str) -> None:
        """Before anything switches: a trust statement the box would not adopt refuses the bundle."""
        try:
            new = load_trust_store(statement)
            check_rotation(self._own_trust(), new, f"trust statement of {version}")
        except TrustStoreError as exc:
            raise BundleRejected(str(exc)) from None

    def _own_trust(self) -> TrustStore | None:
        """The box's trust store, or None when it is lost or damaged."""
        try:
            return self.trust()
        except TrustStoreError:
            return None

    def _check_space(self, manifest: BundleManifest) -> None:
        """Refuse early when the wheels, unpacked and installed, would not fit (a full disk breaks more)."""
        need = SPACE_FACTOR * sum(entry.size for entry in manifest.files.values())
        self.releases.folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.releases.folder).free
        if free < need:
            raise InstallFailed(
                f"{free // 2**20} MiB free under {self.settings.root}, need {need // 2**20} MiB"
            )

    def _preflight(self, version: str) -> None:
        """Run the new release's command once before anything switches: catches a broken install early."""
        command = self.releases.command(version)
        result = self.runner.run([str(command), "--version"], timeout_s=120)
        if not result.ok:
            output = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise ReleaseBroken(f"the new release does not start: {' / '.join(output)}")
        said = result.stdout.split()
        if version not in said:
            # the wheel's metadata said `version`; the code itself must say so too
            raise ReleaseBroken(f"the new release says it is {' '.join(said)[:60]!r}, not {version}")

    def _discard(self, version: str) -> None:
        """Delete what an install of `version` left, unless a link still points at it."""
        if not is_version(version):
            return
        shutil.rmtree(self.releases.staging(version), ignore_errors=True)
        if version not in (self.releases.linked(), self.releases.linked(self.releases.previous)):
            shutil.rmtree(self.releases.path(version), ignore_errors=True)

    def control_blocks(self) -> bool:
        """Whether a grid-control event holds an update back now: at most `max_control_wait_s` in all.

        The wait starts when an update first finds an event in force and ends when a look finds
        none; past the maximum the update goes ahead (and says so), because the flag is only the
        gateway's word: a gateway that never clears it must not stop updates for good.
        """
        if not self.control_in_force():
            if self._control_since is not None:
                _LOGGER.info("grid-control event over: the update goes ahead")
            self._control_since = None
            return False
        now = self._monotonic()
        if self._control_since is None:
            self._control_since = now
            _LOGGER.info(
                "grid-control event in force: the update waits (at most %.0f s)",
                self.settings.max_control_wait_s,
            )
        waited = now - self._control_since
        if waited < self.settings.max_control_wait_s:
            return True
        _LOGGER.warning(
            "grid-control events have held this update back for %.0f s (max_control_wait_s): updating now,"
            " between looks; the gateway restarts once and takes the event up again",
            waited,
        )
        return False

    def _wait_for_control(self, what: str) -> None:
        """Updates do not restart the gateway while a grid-control event is in force (bounded wait)."""
        while self.control_blocks():
            _LOGGER.debug("grid-control event in force: %s waits", what)
            self._sleep(self.settings.control_retry_s)

    # --- trial ----------------------------------------------------------------------------------

    def watch(self) -> UpdateState:
        """Probe the service until the trial ends in a commit or a rollback."""
        base: int | None = None
        state = self.state
        while state.phase in (Phase.TRIAL, Phase.ROLLING_BACK):
            if state.phase is Phase.ROLLING_BACK:
                return self._roll_back()
            status = self.service.status()
            # systemd may zero NRestarts when our (non-blocking) restart job runs after this first look
            base = status.n_restarts if base is None else min(base, status.n_restarts)
            state = self.apply(_observation(status, base))
            if state.phase is Phase.IDLE and state.last is not None and state.last.result == "committed":
                self._after_commit()
            elif state.phase is Phase.TRIAL:
                self._sleep(self.settings.probe_interval_s)
        return state

    def _roll_back(self) -> UpdateState:
        state = self.state
        known_good = state.known_good
        if known_good is not None and self.releases.complete(known_good):
            self.releases.point(self.releases.current, known_good)
            self.service.restart()
        else:
            _LOGGER.critical("no complete release to roll back to (known good: %s)", known_good)
        state = self.apply(machine.RolledBack())
        if state.last is not None:
            self._discard(state.last.version)
        return state

    def _after_commit(self) -> None:
        state = self.state
        from_version = state.last.from_version if state.last is not None else None
        if from_version is not None and self.releases.complete(from_version):
            self.releases.point(self.releases.previous, from_version)
        self._raise_floor(state.known_good)
        self._rotate_keys(state.known_good)
        self.releases.prune(self.settings.keep_releases)

    def _rotate_keys(self, version: str | None) -> None:
        """Adopt the committed release's trust statement if it is newer than ours; never raises.

        A statement that does not load or jumps too far leaves the current keys in force (one ERROR):
        start-up recovery runs this at every boot and must not fail over it.
        """
        if version is None or not is_version(version):
            return
        statement = self.releases.path(version) / TRUST_STATEMENT
        if not statement.is_file():
            return
        try:
            new = load_trust_store(statement)
            if not check_rotation(self._own_trust(), new, str(statement)):
                _LOGGER.debug("trust statement serial %d is not newer than ours", new.serial)
                return
            new.save(self.settings.trust_store)
        except TrustStoreError as exc:
            _LOGGER.error("trust statement not adopted, the current keys stay in force: %s", exc)
            return
        except OSError as exc:
            _LOGGER.error(
                "cannot write %s, the current keys stay in force: %s", self.settings.trust_store, exc
            )
            return
        _LOGGER.warning(
            "fleet keys rotated to serial %d: trusted %s, revoked %s",
            new.serial,
            ", ".join(sorted(new.keys)) or "none",
            ", ".join(sorted(new.revoked)) or "none",
        )

    # --- operator and systemd entries ---------------------------------------------------------

    def recover(self) -> UpdateState:
        """At start-up: finish or undo whatever a power cut interrupted; returns the state afterwards."""
        with update_lock(self.settings.state_dir, wait_s=ROLLBACK_LOCK_WAIT_S):
            return self._recover()

    def _recover(self) -> UpdateState:
        self.releases.clean_temporaries()
        link = self.releases.linked()
        state = self.state
        if link is None or not self.releases.complete(link):
            link = self._repair_current(state)
        state = self.apply(machine.Boot(link))
        if state.phase is Phase.ROLLING_BACK:
            state = self._roll_back()
        elif state.phase is Phase.IDLE and state.last is not None and state.last.result == "failed":
            self._discard(state.last.version)
        # a power cut between the commit and the floor or the key rotation must not lose them
        committed = state.known_good if state.phase is Phase.IDLE else None
        self._raise_floor(committed)
        self._rotate_keys(committed)
        self.releases.prune(self.settings.keep_releases)
        return state

    def _repair_current(self, state: UpdateState) -> str | None:
        """`current` is missing, dangling or incomplete: point it at the best complete release."""
        candidates = [state.known_good] if state.known_good else []
        candidates += reversed(self.releases.installed())
        for version in candidates:
            if version is not None and self.releases.complete(version):
                _LOGGER.error("current link is broken; pointing it at %s", version)
                self.releases.point(self.releases.current, version)
                return version
        return None

    def rollback(
        self, reason: str, crash_loop: bool = False, lock_wait_s: float = ROLLBACK_LOCK_WAIT_S
    ) -> UpdateState:
        """Roll the trial release back (the OnFailure entry, or an operator)."""
        wait = lock_wait_s if crash_loop else 0.0
        try:
            with update_lock(self.settings.state_dir, wait_s=wait):
                return self._rollback(reason, crash_loop)
        except UpdateBusy:
            if not crash_loop:
                raise
            # the updater holding the lock is watching this trial: it sees the failure and rolls back itself
            raise NothingToDo("an updater is watching the trial and rolls it back by itself") from None

    def _rollback(self, reason: str, crash_loop: bool) -> UpdateState:
        event = machine.CrashLoop(reason) if crash_loop else machine.RollbackRequested(reason)
        state = self.apply(event)
        if state.phase is not Phase.ROLLING_BACK:
            raise NothingToDo(f"nothing to roll back: no update is on trial (phase {state.phase})")
        return self._roll_back()

    def commit(self) -> UpdateState:
        """Commit the trial release now (an operator has checked it)."""
        with update_lock(self.settings.state_dir):
            state = self.apply(machine.CommitRequested())
            if state.last is None or state.last.result != "committed" or state.phase is not Phase.IDLE:
                raise NothingToDo("nothing to commit: no update is on trial")
            self._after_commit()
            return state

    def resume(self) -> UpdateState:
        """Take over an update left by an updater that went away (e.g. an interrupted `update install`)."""
        with update_lock(self.settings.state_dir):
            state = self.state
            if state.updating:
                _LOGGER.info("update to %s is %s and unwatched: watching it", state.target, state.phase)
            if state.phase in (Phase.STAGING, Phase.SWITCHING):
                self._recover()
            return self.watch()

    def mark_reported(self) -> None:
        """The fleet has been told about the last outcome."""
        state = self.state
        if state.last is not None and not state.last.reported:
            last = dataclasses.replace(state.last, reported=True)
            self.state_file.save(dataclasses.replace(state, last=last))


def _observation(status: ServiceStatus, base_restarts: int) -> machine.Observed:
    """Interpret systemd's view: active = READY sent (Type=notify); any restart since the switch = failed."""
    failed = (
        status.active_state == "failed"
        or status.sub_state == "auto-restart"
        or status.n_restarts > base_restarts
    )
    ready = status.active_state == "active" and status.sub_state == "running"
    known = status.active_state != "unknown"
    return machine.Observed(ready and not failed, failed and known, status.describe(), known)
