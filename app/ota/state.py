"""The persisted update state (atomic JSON) and the lock that keeps two updaters apart."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
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


def set_control_in_force(flag: Path, until: float | None) -> None:
    """Gateway side: mark a grid-control event in force until `until` (epoch seconds), or clear it (None)."""
    if until is None:
        flag.unlink(missing_ok=True)
    else:
        write_json(flag, {"until": until})


def control_in_force(flag: Path, now: float | None = None) -> bool:
    """Updater side: whether the gateway reports a grid-control event in force.

    The flag carries the event's end, so one left behind by a crashed gateway cannot block updates
    forever; an unreadable flag counts as in force (safe side).
    """
    try:
        until = float(json.loads(flag.read_bytes())["until"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return (time.time() if now is None else now) < until


@contextlib.contextmanager
def update_lock(state_dir: Path, wait_s: float = 0.0, poll_s: float = 0.2) -> Iterator[None]:
    """Hold the updater lock; raise UpdateBusy if another updater keeps it longer than `wait_s`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
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
