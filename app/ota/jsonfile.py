"""JSON state files, written crash-safe by `app.store.files.write_atomic`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.store.files import fsync_dir, write_atomic

__all__ = ["fsync_dir", "write_atomic", "write_json"]


def write_json(path: Path, value: Any, mode: int = 0o644) -> None:
    """Atomically write `value` as indented JSON."""
    write_atomic(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), mode)
