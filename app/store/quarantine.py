"""Keep a damaged state file aside for a look later, without letting the copies fill the card."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

_LOGGER = logging.getLogger(__name__)

FOLDER: Final = "quarantine"
#: at most this many damaged files are kept (newest first) ...
MAX_FILES: Final = 3
#: ... and at most this many bytes of them together; a bigger one is deleted, not kept
MAX_BYTES: Final = 16 << 20
#: sqlite's companion files that belong to a database file
_COMPANIONS: Final = ("-wal", "-shm", "-journal")


def quarantine(path: Path, *, now: datetime | None = None) -> Path | None:
    """Move `path` (and its -wal/-shm) into the quarantine folder with a UTC timestamp; None if none kept.

    A rename costs no space, so this works on a full disk; the oldest copies go first.
    """
    folder = path.parent / FOLDER
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    kept: Path | None = None
    try:
        folder.mkdir(exist_ok=True)
        if path.exists():
            kept = folder / f"{path.name}.{stamp}"
            os.replace(path, kept)
        for suffix in _COMPANIONS:
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                os.replace(extra, folder / f"{path.name}.{stamp}{suffix}")
    except OSError as exc:  # cannot move it aside: delete it, a working store matters more
        _LOGGER.error("cannot quarantine %s (%s); deleting it", path, exc)
        for victim in (path, *(path.with_name(path.name + s) for s in _COMPANIONS)):
            victim.unlink(missing_ok=True)
        return None
    prune(folder)
    return kept if kept is not None and kept.exists() else None


def prune(folder: Path, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> None:
    """Delete the oldest quarantined files until at most `max_files` sets and `max_bytes` remain."""
    groups: dict[str, list[Path]] = {}
    for entry in folder.iterdir():
        base = entry.name
        for suffix in _COMPANIONS:
            base = base.removesuffix(suffix)
        groups.setdefault(base, []).append(entry)
    total = 0
    for number, name in enumerate(sorted(groups, key=_stamp_of, reverse=True)):
        size = sum(p.stat().st_size for p in groups[name])
        if number < max_files and total + size <= max_bytes:
            total += size
            continue
        for entry in groups[name]:
            entry.unlink(missing_ok=True)


def _stamp_of(name: str) -> str:
    """The timestamp part of a quarantined file's name (sorts by age across different files)."""
    return name.rsplit(".", 1)[-1]


def kept(state_dir: Path) -> list[Path]:
    """The quarantined database files in `state_dir`, oldest first."""
    folder = state_dir / FOLDER
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if not p.name.endswith(_COMPANIONS)), key=lambda p: _stamp_of(p.name)
    )
