"""Resident memory of the running gateway: what it can give back, and what it need not load.

The box has 512 MB for ten years; `make bench` holds the steady RSS against 45 MB. Two measured
savings live here (x86_64, this repository's bench, 2026-12):

- `skip_mime_database`: aiohttp.web builds a MIME table from /etc/mime.types as it is imported
  (~0.4 MB of strings). The status page serves no files, so the built-in table is enough.
- `return_free_memory`: start-up (discovery, the TLS handshakes, the first documents) leaves
  freed memory that glibc keeps inside the heap; `malloc_trim` hands it back (1-3 MB once, less
  later). Run once the gateway has settled and then now and again, not per request.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import mimetypes
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)

#: first trim once discovery and the first reports are done; then a few wake-ups an hour
FIRST_TRIM_S = 60.0
TRIM_EVERY_S = 900.0


def skip_mime_database() -> None:
    """Keep mimetypes to its built-in table (call before aiohttp.web is imported)."""
    mimetypes.knownfiles = []


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load_trim()


def return_free_memory() -> bool:
    """Collect garbage and give the heap's free pages back to the kernel; False without glibc."""
    gc.collect()
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def keep_trimmed(first_s: float = FIRST_TRIM_S, every_s: float = TRIM_EVERY_S) -> None:
    """Run `return_free_memory` after `first_s`, then every `every_s` seconds, until cancelled."""
    await asyncio.sleep(first_s)
    while True:
        if not return_free_memory():
            _LOGGER.debug("malloc_trim unavailable: memory is not handed back")
            return
        await asyncio.sleep(every_s)
