"""Commissioning mode: a long button press opens the status page to the site network for a while."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from app.commissioning.status_page import StatusPage
from app.config import StatusPageConfig

_LOGGER = logging.getLogger(__name__)


class CommissioningMode:
    """Opens `page()` on the commissioning host for `commissioning_s`, then back on its own host."""

    def __init__(
        self,
        config: StatusPageConfig,
        page: Callable[[], StatusPage | None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._page = page
        self._monotonic = monotonic
        #: monotonic time the mode ends (None: not in commissioning mode)
        self.until: float | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether the page is open to the site network now."""
        return self.until is not None and self._monotonic() < self.until

    async def open(self) -> None:
        """Open the page to the site network (again) for `commissioning_s`."""
        seconds = self._config.commissioning_s
        self.until = self._monotonic() + seconds
        self.close()
        host = self._config.commissioning_host
        page = self._page()
        if page is not None:
            # the installer's phone is on the site network, not on this box's loopback
            await page.serve_on(host)
        _LOGGER.info("commissioning mode for %d s: status page on %s", seconds, host)
        self._closing = asyncio.create_task(self._end(seconds))

    async def _end(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.until = None
        page = self._page()
        if page is not None:
            await page.serve_on(self._config.host)
        _LOGGER.info("commissioning mode ended")

    def close(self) -> None:
        """Forget a pending end (at shutdown, or when the mode is opened again)."""
        if self._closing is not None:
            self._closing.cancel()
            self._closing = None
