"""The one atomic replace: the new content or the old one, never a mix, also on a full disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from app.store.files import write_atomic
from tests.faults.tmpfs import fill, small_tmpfs


def test_replaces_whole_file_with_its_mode_and_no_leftover(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    write_atomic(path, b"old", mode=0o600)
    write_atomic(path, b"new" * 10_000, mode=0o600)
    assert path.read_bytes() == b"new" * 10_000
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_a_full_disk_keeps_the_old_file(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", 256) as disk:
        path = disk / "state.json"
        write_atomic(path, b"old content")
        fill(disk)
        with pytest.raises(OSError) as caught:
            write_atomic(path, os.urandom(64 * 1024))
        assert caught.value.errno == errno.ENOSPC
        assert path.read_bytes() == b"old content"
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "state.json"]  # no half-written temp
