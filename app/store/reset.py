"""The button's state reset: empty the gateway's state folder but for what must survive it."""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path


def reset_state(state_dir: Path, keep: Collection[Path]) -> None:
    """Remove every entry of `state_dir` not in `keep` (a symlink is removed, never followed)."""
    for entry in state_dir.iterdir() if state_dir.is_dir() else ():
        if entry in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
