"""Whole-OS A/B updates with RAUC, gated by the same state machine and health check as app updates.

The image has two root slots (A, B) and RAUC's `custom` bootloader backend (image/README.md, "OS
updates"). An OS update is the app update's machine with slots for releases: the identity of an
OS is `<slot>:<version>` (e.g. `B:0.2.0`), what `Boot` sees is the slot the initramfs booted.

    install:  Begin -> STAGING (`rauc install`: writes the other slot, makes it primary)
              -> Staged -> SWITCHING -> Switched -> TRIAL -> reboot
    boot:     Boot(booted) -> TRIAL (in the new slot): watch the gateway as for an app update;
              committed -> `rauc status mark-good`; rolled back -> `mark-bad` and reboot; the
              initramfs then boots the old slot, where Boot -> ROLLING_BACK -> RolledBack -> IDLE.
              A slot that never reaches userspace runs out of boot attempts and the initramfs falls
              back by itself: there too the old slot finishes the rollback.

The state lives on the boot partition (root's alone, shared by both slots); the lock in /run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.ota import machine
from app.ota.errors import BundleRejected, InstallFailed, NothingToDo, UpdateBusy
from app.ota.machine import Phase, UpdateState
from app.ota.runner import CommandRunner, SubprocessRunner
from app.ota.settings import OtaSettings
from app.ota.state import StateFile, update_lock
from app.ota.updater import Updater, _observation, step_and_save

_LOGGER = logging.getLogger(__name__)
SLOTS = ("A", "B")
#: `rauc install` of a root file system under emulation takes minutes; a real Pi's SD card about as long
INSTALL_TIMEOUT_S = 3600.0


@dataclass(frozen=True, slots=True)
class OsPaths:
    """Where the OS updater keeps its state and finds what the initramfs and the image left."""

    #: on the boot partition: survives every slot switch, root's alone (vfat, umask 0077)
    state_dir: Path = Path("/boot/firmware/wattsmart-os")
    #: the lock only has to keep two updaters of one boot apart
    lock_dir: Path = Path("/run/wattsmart-os-update")
    #: `WSG_BOOTED=A|B`, written by the initramfs's slot selector
    booted_file: Path = Path("/run/wattsmart-ab/booted")
    #: IMAGE_VERSION=... of the running root file system (image/customize.sh)
    image_file: Path = Path("/etc/wattsmart-image")
    rauc: str = "rauc"

    def __post_init__(self) -> None:
        if not self.rauc:
            raise ValueError("rauc: a program name")


def other(slot: str) -> str:
    """The slot that is not `slot`."""
    return "B" if slot == "A" else "A"


def slot_of(identity: str | None) -> str | None:
    """The slot of an OS identity `<slot>:<version>`."""
    if identity is None or ":" not in identity:
        return None
    slot = identity.split(":", 1)[0]
    return slot if slot in SLOTS else None


def read_booted(path: Path) -> str:
    """The slot the initramfs booted (A when it left no word: an image without the selector)."""
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "WSG_BOOTED" and value.strip() in SLOTS:
                return value.strip()
    except OSError:
        pass
    return "A"


def read_image_version(path: Path) -> str:
    """IMAGE_VERSION of a root file system's /etc/wattsmart-image ("unknown" when missing)."""
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "IMAGE_VERSION" and value.strip():
                return value.strip()
    except OSError:
        pass
    return "unknown"


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """What `rauc info` says about a bundle it verified against the box's keyring."""

    version: str
    compatible: str
    build: str | None = None

    def __post_init__(self) -> None:
        if not self.version or ":" in self.version or len(self.version) > 64:
            raise BundleRejected(f"bundle version {self.version!r} is not a short version string")


class OsUpdater:
    """Installs OS bundles into the other slot with RAUC, and commits or rolls back after the reboot."""

    def __init__(
        self,
        settings: OtaSettings,
        paths: OsPaths | None = None,
        runner: CommandRunner | None = None,
        *,
        control_in_force: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.paths = paths or OsPaths()
        self.runner = runner or SubprocessRunner()
        # the app updater's service probe and bounded grid-control wait, unchanged
        self.app = Updater(
            settings, self.runner, control_in_force=control_in_force, monotonic=monotonic, sleep=sleep
        )
        self.state_file = StateFile(self.paths.state_dir)
        self._monotonic, self._wall_clock, self._sleep = monotonic, wall_clock, sleep

    # --- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> UpdateState:
        """The saved OS update state."""
        return self.state_file.load()

    def apply(self, event: machine.Event) -> UpdateState:
        """Feed one event to the (app updates') state machine and save the result."""
        return step_and_save(
            self.state_file, event, self._monotonic(), self._wall_clock, self.settings, what="OS update"
        )

    def booted(self) -> str:
        """The slot this boot runs from."""
        return read_booted(self.paths.booted_file)

    def running(self) -> str:
        """This boot's OS identity: the update's (target or known good) whose slot booted, else
        `<slot>:<image version>`. A slot holds one OS at a time, so the slot says which one runs;
        the version is the bundle's, which need not be the image's own (/etc/wattsmart-image)."""
        booted = self.booted()
        state = self.state
        for identity in (state.target, state.known_good):
            if slot_of(identity) == booted and identity is not None:
                return identity
        return f"{booted}:{read_image_version(self.paths.image_file)}"

    # --- rauc -----------------------------------------------------------------------------------

    def _rauc(self, *args: str, timeout_s: float = 120.0) -> str:
        result = self.runner.run([self.paths.rauc, *args], timeout_s=timeout_s)
        if not result.ok:
            output = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise InstallFailed(f"rauc {args[0]} failed: {' / '.join(output) or 'no output'}")
        return result.stdout

    def info(self, bundle: Path) -> BundleInfo:
        """Check the bundle's signature against the box's keyring (`rauc info`); BundleRejected if refused."""
        try:
            out = self._rauc("info", "--output-format=json", str(bundle))
        except InstallFailed as exc:
            raise BundleRejected(str(exc)) from None
        try:
            raw = json.loads(out)
            return BundleInfo(str(raw["version"]), str(raw["compatible"]), raw.get("build") or None)
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleRejected(f"rauc info gave no version and compatible: {exc!r}") from None

    def _mark(self, how: str) -> None:
        """`rauc status mark-good|mark-bad|mark-active booted`; logged, never raises (the boot goes on)."""
        try:
            self._rauc("status", how, "booted")
        except InstallFailed as exc:
            _LOGGER.error("%s", exc)

    def _reboot(self) -> None:
        self.runner.run([self.settings.systemctl, "reboot"], timeout_s=60)

    # --- install --------------------------------------------------------------------------------

    def install(self, bundle: Path, reboot: bool = True) -> UpdateState:
        """Verify, write the other slot, make it primary and reboot into its trial."""
        with update_lock(self.paths.lock_dir):
            if self.state.phase is not Phase.IDLE:
                raise UpdateBusy(f"an OS update is {self.state.phase} (reboot to finish it)")
            info = self.info(bundle)
            running = self.running()
            target = f"{other(self.booted())}:{info.version}"
            if self.app.control_in_force():
                _LOGGER.info("a grid-control event is in force: the OS update waits for it to end")
            self.app._wait_for_control("the OS update")
            self.apply(machine.Begin(target, running))
            started = self._monotonic()
            try:
                self._rauc("install", str(bundle), timeout_s=INSTALL_TIMEOUT_S)
            except InstallFailed as exc:
                self.apply(machine.StageFailed(str(exc), permanent=False))
                raise
            _LOGGER.info("slot %s written in %.0f s", slot_of(target), self._monotonic() - started)
            self.apply(machine.Staged())
            self.apply(machine.Switched())
            if reboot:
                # the reboot takes the gateway down: not during a grid-control event (bounded wait)
                self.app._wait_for_control("the reboot into the new OS")
                _LOGGER.warning("rebooting into slot %s for its trial", slot_of(target))
                self._reboot()
            return self.state

    # --- boot -----------------------------------------------------------------------------------

    def boot(self, watch: bool = True) -> UpdateState:
        """At every start-up: finish what the last boot left, watch a trial to its end, re-arm the slot."""
        with update_lock(self.paths.lock_dir):
            state = self.state
            if state.phase is Phase.STAGING and slot_of(state.target) == self.booted():
                # a power cut after `rauc install` finished but before the state said so: RAUC makes
                # a slot primary only once it is written, so booting it proves both; on to its trial
                state = self.apply(machine.Staged())
            state = self.apply(machine.Boot(self.running()))
            if state.phase is Phase.TRIAL and watch:
                state = self._watch()
            if state.phase is Phase.ROLLING_BACK:
                return self._roll_back()
            if state.phase is Phase.IDLE:
                # committed here, or a boot of a committed slot: its boot attempts are re-armed
                self._mark("mark-good")
            return state

    def _watch(self) -> UpdateState:
        base: int | None = None
        state = self.state
        while state.phase is Phase.TRIAL:
            status = self.app.service.status()
            base = status.n_restarts if base is None else min(base, status.n_restarts)
            state = self.apply(_observation(status, base))
            if state.phase is Phase.TRIAL:
                self._sleep(self.settings.probe_interval_s)
        return state

    def _roll_back(self) -> UpdateState:
        state = self.state
        if slot_of(state.target) == self.booted():
            # still in the new slot: it is marked bad, and the initramfs boots the old one next
            self._mark("mark-bad")
            _LOGGER.error(
                "OS update to %s failed (%s): rebooting into the old slot", state.target, state.reason
            )
            self._reboot()
            return state
        # back in the old slot: the rollback is done; this slot is primary (and re-armed) again
        self._mark("mark-active")
        return self.apply(machine.RolledBack())

    def rollback(self, reason: str) -> UpdateState:
        """An operator rolls the OS on trial back (reboots into the old slot)."""
        with update_lock(self.paths.lock_dir):
            state = self.apply(machine.RollbackRequested(reason))
            if state.phase is not Phase.ROLLING_BACK:
                raise NothingToDo(f"no OS update is on trial (phase {state.phase})")
            return self._roll_back()

    # --- reports --------------------------------------------------------------------------------

    def pending_report(self, lfdi: str | None) -> dict[str, Any] | None:
        """The outcome the fleet has not been told yet, in the app updates' report format."""
        last = self.state.last
        if last is None or last.reported:
            return None
        from app import __version__

        return {
            "lfdi": lfdi,
            "kind": "os",
            "version": last.version,
            "from_version": last.from_version,
            "result": last.result,
            "reason": last.reason,
            "at": datetime.fromtimestamp(last.at, UTC).isoformat(timespec="seconds"),
            "running": self.running(),
            "updater": __version__,
        }

    def mark_reported(self) -> None:
        """The fleet has been told about the last OS outcome."""
        state = self.state
        if state.last is not None and not state.last.reported:
            last = dataclasses.replace(state.last, reported=True)
            self.state_file.save(dataclasses.replace(state, last=last))

    def report(self, lfdi: str | None) -> bool:
        """POST the pending outcome to `report_url` (where app updates report); True when none is left."""
        report = self.pending_report(lfdi)
        url = self.settings.report_url
        if report is None:
            return True
        if url is None:
            return False
        from app.ota.transfer import post_report

        async def post() -> bool:
            import aiohttp

            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                return await post_report(session, url, report)

        if asyncio.run(post()):
            self.mark_reported()
            return True
        return False
