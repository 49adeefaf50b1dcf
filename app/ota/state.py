"""The persisted update state (atomic JSON) and the lock that keeps two updaters apart."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from app.ota.errors import UpdateBusy
from app.ota.jsonfile import write_json
from app.ota.machine import UpdateState, from_json, to_json

_LOGGER = logging.getLogger(__name__)


class StateFile:
    """`<state_dir>/state.json`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"

    def load(self) -> UpdateState:
        """The saved state; a missing file is a box that never updated."""
        try:
            return from_json(json.loads(self.path.read_bytes()))
        except FileNotFoundError:
            return UpdateState()
        except (ValueError, TypeError, KeyError) as exc:
            # written atomically, so this is disk damage; start-up recovery re-adopts `current`
            _LOGGER.error("%s is unreadable (%r); starting from the installed links", self.path, exc)
            return UpdateState()

    def save(self, state: UpdateState) -> None:
        """Write atomically (0644: the gateway reads it for the "updating" LED)."""
        write_json(self.path, to_json(state))


def is_updating(state_dir: Path) -> bool:
    """Whether an update is under way; for the gateway's LED (cheap, never raises)."""
    try:
        return StateFile(state_dir).load().updating
    except OSError:
        return False


#: the control-in-force flag counts only while the gateway rewrote it this recently (it does so every
#: FLAG_REFRESH_S while an event is in force): a flag a crashed gateway left expires within minutes
#: whatever `until` it holds
FLAG_TTL_S = 300.0
FLAG_REFRESH_S = 60.0
_FLAG_MAX_BYTES = 4096


def set_control_in_force(flag: Path, until: float | None) -> None:
    """Gateway side: mark a grid-control event in force until `until` (epoch seconds), or clear it (None).

    Call again at least every FLAG_REFRESH_S while the event lasts: the flag expires after FLAG_TTL_S.
    """
    if until is None:
        flag.unlink(missing_ok=True)
    else:
        write_json(flag, {"until": until})


def usable_control_flag(flag: Path) -> Path | None:
    """Gateway side: `flag` when its directory exists (the RuntimeDirectory on a box), else None."""
    return flag if flag.parent.is_dir() else None


def control_in_force(flag: Path, now: float | None = None) -> bool:
    """Updater side (root): whether the gateway reports a grid-control event in force.

    In force while `now` is before the flag's `until` and the flag was written within FLAG_TTL_S
    (its mtime), so a flag left behind by a crashed gateway stops blocking updates within minutes.
    A flag that is there but unreadable counts as in force (safe side) and expires the same way.
    The file is the gateway's: it is opened without following links or blocking (a FIFO must not
    hang root's updater) and read up to a few KiB. How long an update waits in all is bounded by
    the updater (OtaSettings.max_control_wait_s), not by anything in this file.
    """
    now = time.time() if now is None else now
    try:
        data, mtime = read_gateway_file(flag, _FLAG_MAX_BYTES, follow=False)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # there but not a small regular file: in force, bounded by max_control_wait_s
    if not -FLAG_TTL_S <= now - mtime <= FLAG_TTL_S:
        return False
    try:
        until = float(json.loads(data)["until"])
    except (ValueError, KeyError, TypeError):
        return True
    return not math.isfinite(until) or now < until


def read_gateway_file(path: Path, limit: int, follow: bool = True) -> tuple[bytes, float]:
    """Root reading a file the gateway's user controls: (its bytes, its mtime), never hanging or swelling.

    Opened non-blocking (a FIFO must not hang root's updater), optionally without following a final
    symlink; ValueError unless it is a regular file of at most `limit` bytes.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise ValueError(f"{path} is not a regular file of at most {limit} bytes")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return data, st.st_mtime


@contextlib.contextmanager
def update_lock(state_dir: Path, wait_s: float = 0.0, poll_s: float = 0.2) -> Iterator[None]:
    """Hold the updater lock; raise UpdateBusy if another updater keeps it longer than `wait_s`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    # 0600: flock() needs only a read-only descriptor, so a lock file others can open is one the
    # gateway's user could hold forever, stopping every update and failing recovery at boot
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # lock files older releases made 0644
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UpdateBusy("another update is in progress on this box") from None
                time.sleep(poll_s)
        yield
    finally:
        os.close(fd)  # closing releases the flock
