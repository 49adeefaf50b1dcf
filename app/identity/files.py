"""Crash-safe file operations for the identity folder: private files born 0600, atomic publishing.

A file is written completely and fsynced before anything points at it; folders are published by
rename and selected by swapping a symlink with rename(2), so a power cut leaves either the old or
the new state, never a half-written key or certificate.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from app.store.files import fsync_dir as fsync_dir  # the store publishes with it too

#: (uid, gid) new files are given, or None to keep the creating process's
Owner = tuple[int, int] | None

PRIVATE = 0o600
PUBLIC = 0o644
FOLDER = 0o700


def service_owner(state_dir: Path) -> Owner:
    """Who new files must belong to: the state directory's owner when we run as root for them.

    systemd's StateDirectory= gives the folder to the service user; an installer running the
    command with sudo must not leave a root-owned key the service cannot read.
    """
    if os.geteuid() != 0:
        return None
    st = state_dir.stat()
    return None if st.st_uid == 0 else (st.st_uid, st.st_gid)


def write_new(path: Path, data: bytes, *, mode: int, owner: Owner = None) -> None:
    """Create `path` (it must not exist) with exactly `mode`, write `data` and fsync it."""
    # O_EXCL|O_NOFOLLOW: never follow a planted symlink, never reuse a file someone else opened;
    # the mode is given to open(2) so there is no moment with wider permissions.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may only have narrowed it; make it exact
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def make_dir(path: Path, *, owner: Owner = None) -> None:
    """Create folder `path` readable by its owner only."""
    os.mkdir(path, FOLDER)
    os.chmod(path, FOLDER)
    if owner is not None:
        os.chown(path, *owner)


def ensure_dir(path: Path, *, owner: Owner = None) -> None:
    """Create `path` (owner-only) unless it exists; tighten an existing one to owner-only."""
    try:
        make_dir(path, owner=owner)
    except FileExistsError:
        os.chmod(path, FOLDER)


def point(link: Path, target: str, *, owner: Owner = None) -> None:
    """Atomically make symlink `link` point to `target` (a name in the same folder)."""
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    if owner is not None:
        os.lchown(tmp, *owner)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def target(link: Path) -> str | None:
    """The folder name symlink `link` points to, or None when there is no such link."""
    try:
        return os.readlink(link)
    except FileNotFoundError:
        return None


def unpoint(link: Path) -> None:
    """Remove symlink `link` if present."""
    link.unlink(missing_ok=True)
    fsync_dir(link.parent)


def remove_tree(path: Path) -> None:
    """Delete a generation folder (flat: files only) and the folder itself."""
    if not path.is_dir() or path.is_symlink():
        return
    for entry in path.iterdir():
        entry.unlink()
    path.rmdir()


@contextlib.contextmanager
def locked(folder: Path, *, owner: Owner = None) -> Iterator[None]:
    """Hold an exclusive lock on `folder` so the command line and the gateway never race."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
    try:
        if owner is not None:
            os.fchown(fd, *owner)  # the service must be able to take the lock after a sudo run
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
