"""Waiting for the installer: until the box is commissioned, or until a setting that must be fixed is.

Both look at the configuration file with a stat per check and load it only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from app.config import ConfigError, load_config
from app.health import Health, Kind
from app.store.files import file_stamp

_LOGGER = logging.getLogger(__name__)


async def _loads(path: Path) -> bool:
    """Whether the changed file at `path` is a usable configuration (says why not, once per change)."""
    try:
        await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        _LOGGER.error("the changed configuration is not usable yet: %s", exc)
        return False
    return True


async def not_commissioned(
    path: Path | None,
    check_s: float,
    beat: Callable[[], None],
    commissioned_now: Callable[[], bool],
    had_certificate: bool,
) -> str:
    """Wait, beating so the watchdog stays fed, until the configuration changed and loads or
    `commissioned_now()` (run in a thread) holds; returns why the gateway must restart."""
    stamp = file_stamp(path)
    while True:
        beat()
        await asyncio.sleep(check_s)
        if path is not None and file_stamp(path) != stamp:
            stamp = file_stamp(path)
            if await _loads(path):
                return f"{path} changed"
        if await asyncio.to_thread(commissioned_now):
            return (
                "the box is commissioned now" if had_certificate else "a client certificate is now installed"
            )


async def changed_config(path: Path | None, health: Health, check_s: float) -> str:
    """Named recovery of a configuration problem: returns once, while some part has a problem of kind
    CONFIGURATION, the file has changed and loads (the gateway then restarts on it)."""
    stamp = file_stamp(path)
    while True:
        await asyncio.sleep(check_s)
        if path is None or Kind.CONFIGURATION not in health.kinds().values():
            continue
        now = file_stamp(path)
        if now == stamp:
            continue
        stamp = now
        if await _loads(path):
            return f"{path} changed while a setting had to be fixed"
