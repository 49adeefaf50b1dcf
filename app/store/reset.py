"""The button's state reset: forget the gateway's state (outbox, control ledger, saved links), never
the identity, and never the updater's folder (root's, and a reset must not undo an update in progress)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

_LOGGER = logging.getLogger(__name__)


def reset_state(state_dir: Path, ota_state_dir: Path) -> None:
    """Remove every entry of `state_dir` but the identity and update state (a symlink is removed,
    never followed)."""
    # "ota": root's update state before it moved out of this folder (the gateway cannot delete it)
    keep = {state_dir / "identity", ota_state_dir, state_dir / "ota"}
    for entry in state_dir.iterdir() if state_dir.is_dir() else ():
        if entry in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    _LOGGER.warning("state reset by the button: everything but the identity was removed")
