"""app.memory: freed heap really goes back to the kernel; aiohttp.web built without /etc/mime.types."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from app import memory


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_return_free_memory_hands_freed_heap_back() -> None:
    # 2 kB blocks come from malloc's heap, not pymalloc; keeping every 64th pins the heap's top,
    # so free() alone cannot shrink it and only malloc_trim gives the holes back
    blocks = [bytes(2000) + bytes([i % 256]) for i in range(40_000)]
    kept = blocks[::64]
    del blocks
    before = _rss_kib()
    assert memory.return_free_memory() is True
    after = _rss_kib()
    assert before - after > 20_000, f"RSS {before} -> {after} kB"
    assert kept  # the pins stay alive until here


async def test_keep_trimmed_trims_then_stops_on_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "return_free_memory", lambda: calls.append(1) or True)
    task = asyncio.create_task(memory.keep_trimmed(first_s=0, every_s=3600))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == [1]


def test_status_page_imports_without_the_system_mime_table() -> None:
    probe = (
        "from app.memory import skip_mime_database; skip_mime_database()\n"
        "import mimetypes, aiohttp.web_fileresponse as f\n"
        "print(len(mimetypes.knownfiles), f.CONTENT_TYPES.guess_type('x.html')[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "text/html"]
