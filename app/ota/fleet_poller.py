"""The fleet loop: poll the signed manifest with jitter, install what this box's cohort is offered, report."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from app import __version__
from app.ota import machine
from app.ota.errors import BundleRejected, OtaError, UpdateBusy
from app.ota.fleet import ManifestError, ManifestExpired, choose, cohort, next_poll_delay, parse_manifest
from app.ota.machine import Phase
from app.ota.transfer import RESERVE_BYTES, NoSpace, download, fetch_bytes, post_report
from app.ota.updater import Updater

_LOGGER = logging.getLogger(__name__)


class FleetPoller:
    """Polls `settings.manifest_url` and drives the updater; one per box."""

    def __init__(
        self,
        updater: Updater,
        lfdi: str,
        *,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.updater, self.settings = updater, updater.settings
        self.lfdi, self.cohort = lfdi, cohort(lfdi)
        self._rng = rng or random.Random()
        self._now = now
        self._monotonic, self._sleep = monotonic, sleep
        #: bytes a download must leave free on the state partition (the gateway's store is there)
        self.reserve_bytes = RESERVE_BYTES

    def _session(self) -> aiohttp.ClientSession:
        ctx = ssl.create_default_context(cafile=self.settings.ca_file)
        timeout = aiohttp.ClientTimeout(total=self.settings.download_timeout_s, sock_connect=30)
        return aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=ctx))

    async def poll_once(self) -> str:
        """One poll; returns what happened (for logs and tests): a word such as `committed` or `deferred`."""
        async with self._session() as session:
            await self._report_pending(session)
            if self.settings.manifest_url is None:
                return "disabled"
            try:
                result = await self._poll(session)
            except ManifestExpired as exc:  # stale CDN, or someone on the path replaying an old manifest
                _LOGGER.error("update poll: %s", exc)
                await self._report_refused(session, str(exc))
                return "expired"
            except OtaError as exc:  # unreachable host, bad manifest, damaged trust store: try next time
                _LOGGER.warning("update poll: %s", exc)
                return "error"
            await self._report_pending(session)
            return result

    async def _poll(self, session: aiohttp.ClientSession) -> str:
        url = self.settings.manifest_url
        assert url is not None
        state = self.updater.state
        if state.phase is not Phase.IDLE:
            try:  # a trial whose `update install` went away (ssh dropped): watch it to the end
                state = await asyncio.to_thread(self.updater.resume)
            except UpdateBusy:
                return "busy"
            return state.last.result if state.last is not None else str(state.phase)
        manifest = parse_manifest(await fetch_bytes(session, url), self.updater.trust(), url, self._now())
        if manifest.serial < state.manifest_serial:
            raise ManifestError(f"manifest serial {manifest.serial} is older than {state.manifest_serial}")
        self.updater.apply(machine.ManifestSeen(manifest.serial))
        running = self.updater.running_version()
        floor = self.updater.security_floor()
        release = choose(manifest, running, self.cohort, self._now(), state.failed, floor)
        if release is None:
            return "up-to-date"
        if self.updater.control_blocks():  # bounded: max_control_wait_s
            _LOGGER.info("update to %s deferred: a grid-control event is in force", release.version)
            return "deferred"
        _LOGGER.info("cohort %d: updating %s -> %s", self.cohort, running, release.version)
        folder = self.settings.state_dir / "downloads"
        bundle = folder / f"{release.sha256}.bundle"
        await asyncio.to_thread(_remove_downloads, folder, keep=bundle.name + ".part")
        try:
            await download(
                session, release.url, bundle, release.size, release.sha256, reserve=self.reserve_bytes
            )
        except BundleRejected as exc:  # a corrupted download; it is deleted and fetched again next poll
            _LOGGER.error("download of %s refused: %s", release.version, exc)
            return "corrupt"
        except NoSpace as exc:  # the gateway's store needs the space more: try again next poll
            await asyncio.to_thread(_remove_downloads, folder)
            _LOGGER.error("update to %s not downloaded: %s", release.version, exc)
            return "no-space"
        try:
            state = await asyncio.to_thread(self.updater.install, bundle)
        except BundleRejected as exc:
            self.updater.apply(machine.Rejected(str(release.version), str(exc)))
            return "rejected"
        except OtaError as exc:
            _LOGGER.error("update to %s failed: %s", release.version, exc)
            return "failed"
        finally:
            await asyncio.to_thread(_remove_downloads, folder)
        return state.last.result if state.last is not None else str(state.phase)

    async def _report_pending(self, session: aiohttp.ClientSession) -> None:
        """Tell the fleet how the last update ended, once (retried at every poll until it lands)."""
        last = self.updater.state.last
        if self.settings.report_url is None or last is None or last.reported:
            return
        report: dict[str, Any] = {
            "lfdi": self.lfdi,
            "cohort": self.cohort,
            "version": last.version,
            "from_version": last.from_version,
            "result": last.result,
            "reason": last.reason,
            "at": datetime.fromtimestamp(last.at, UTC).isoformat(timespec="seconds"),
            "running": self.updater.running_version(),
            "updater": __version__,
        }
        if await post_report(session, self.settings.report_url, report):
            self.updater.mark_reported()

    async def _report_refused(self, session: aiohttp.ClientSession, reason: str) -> None:
        """Tell the fleet (best effort, once per poll) that this box refuses the manifest it is served."""
        if self.settings.report_url is None:
            return
        report: dict[str, Any] = {
            "lfdi": self.lfdi,
            "cohort": self.cohort,
            "result": "manifest_refused",
            "reason": reason,
            "at": self._now().isoformat(timespec="seconds"),
            "running": self.updater.running_version(),
            "updater": __version__,
        }
        await post_report(session, self.settings.report_url, report)

    async def run_forever(self) -> None:
        """Recover, finish any trial, then poll at the configured interval with jitter.

        Returns after a commit, so systemd (Restart=always) starts the updater again from the new release.
        """
        state = await asyncio.to_thread(self.updater.recover)
        if state.phase is Phase.TRIAL:
            await asyncio.to_thread(self.updater.resume)
        while True:
            result = await self.poll_once()
            if result == "committed":
                return
            delay = next_poll_delay(self.settings.poll_interval_s, self.settings.poll_jitter, self._rng)
            if result == "deferred":
                delay = min(delay, self.settings.control_retry_s)
            _LOGGER.debug("update poll: %s; next in %.0f s", result, delay)
            if await self.wait(delay) == "committed":
                return

    async def wait(self, delay: float) -> str | None:
        """Sleep `delay` seconds until the next poll, meanwhile taking over trials other processes leave.

        `update install --no-wait` (or an `update install` whose ssh session dropped) leaves a release
        on trial that nobody watches: within `probe_interval_s` this loop sees it in the state file and
        watches it to its commit or rollback. A trial whose own `update install` is still watching it
        holds the update lock, so it is left alone until that process goes away. Returns "committed"
        when a release was committed meanwhile (here or by another process), so that the updater exits
        and systemd starts it again from the new release; otherwise None once `delay` is over.

        Cost while nothing happens: one stat() of the state file every `probe_interval_s`; the file is
        read only when it changed, and the lock tried only while an update is under way.
        """
        path = self.updater.state_file.path
        seen = _signature(path)
        state = self.updater.state
        baseline = _outcome_key(state)
        deadline = self._monotonic() + delay
        while (left := deadline - self._monotonic()) > 0:
            await self._sleep(min(left, self.settings.probe_interval_s))
            signature = _signature(path)
            if signature == seen and not state.updating:
                continue
            seen, state = signature, self.updater.state
            if state.updating:
                try:  # with the lock free, whoever started this update is gone: it is ours to finish
                    state = await asyncio.to_thread(self.updater.resume)
                except UpdateBusy:
                    continue  # its own process (`update install` without --no-wait) watches it
                seen = _signature(path)
            last = state.last
            if last is not None and last.result == "committed" and _outcome_key(state) != baseline:
                return "committed"
        return None


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever the state file is rewritten (atomically, so a new inode each time)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _outcome_key(state: machine.UpdateState) -> tuple[str, str, float] | None:
    """Which update outcome the state holds (ignoring whether the fleet was told yet)."""
    last = state.last
    return None if last is None else (last.version, last.result, last.at)


def _remove_downloads(folder: Path, keep: str = "") -> None:
    """Delete finished bundles and partial downloads of releases no longer wanted."""
    for path in folder.glob("*.bundle*"):
        if path.name != keep:
            path.unlink(missing_ok=True)
