"""The running gateway's status page and the history sampler behind its charts, as one convenience."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from app.commissioning.history import History, Sampler
from app.commissioning.status_page import StatusPage
from app.commissioning.zone import page_zone
from app.config import StatusPageConfig

if TYPE_CHECKING:  # the page's aiohttp application loads with its first connection
    from app.commissioning.web import Snapshot

_LOGGER = logging.getLogger(__name__)


async def serve_page(
    stack: contextlib.AsyncExitStack, config: StatusPageConfig, status: Snapshot, history: History
) -> StatusPage | None:
    """Open the page and start sampling `status` into `history` until `stack` closes.

    A page that cannot listen (e.g. the port is taken) is logged and None, never fatal: the battery
    matters more; the history is sampled regardless.
    """
    page = StatusPage(status, config.host, config.port, history=history, zone=page_zone(config.time_zone))
    opened: StatusPage | None = None
    try:
        opened = await stack.enter_async_context(page)
    except OSError as exc:
        _LOGGER.error("status page unavailable on %s:%d: %s", page.host, page.port, exc)
    sampler = asyncio.create_task(Sampler(history).run(status), name="history")
    stack.push_async_callback(_cancelled, sampler)
    return opened


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has stopped."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
