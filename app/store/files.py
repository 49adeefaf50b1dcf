"""Crash-safe small files: write to a temporary name, fsync, rename, fsync the folder.

The one atomic replace in the gateway (the OTA state and trust store, `app.ota.jsonfile`) and the
folder fsync the identity store publishes with (`app.identity.files`). Standard library only:
importing it loads no database.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so a power cut leaves either the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:  # a short write (a full disk, a signal) must not pass as the whole file
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)  # a full disk gets its space back
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename, a new entry or a symlink in `folder` durable (ext4 may otherwise lose it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_stamp(path: Path | None) -> tuple[int, int] | None:
    """A file's mtime and size, to notice it was replaced or edited (None: absent or not watched)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
