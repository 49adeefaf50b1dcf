"""The server's clock: our clock plus the offset learned from the 2030.5 Time resource.

Every schedule decision downstream uses server time (2030.5 §10.1: devices SHALL synchronise to
the server's Time). TimeType has one-second resolution, so the offset is only that good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from app.client.notices import Notices
from hal.clock import utc_now

_LOGGER = logging.getLogger(__name__)

#: an offset change smaller than this is rounding noise (TimeType is whole seconds), not news
_LOG_THRESHOLD = timedelta(seconds=2)
_RESOLUTION = timedelta(seconds=1)


class ServerClock:
    """`now()` is the server's current time; `update()` re-learns the offset from a Time read."""

    def __init__(
        self,
        base: Callable[[], datetime] = utc_now,
        *,
        max_offset_s: float = 300.0,
        notices: Notices | None = None,
    ) -> None:
        self._base = base
        self._offset = timedelta(0)
        self._synced = False
        self._max_offset = timedelta(seconds=max_offset_s)
        #: where an offset beyond `max_offset_s` is told (one WARNING, and the status page)
        self.notices = notices if notices is not None else Notices()

    @property
    def distrusted(self) -> bool:
        """True while the server's clock is further from ours than the configured bound."""
        return abs(self._offset) > self._max_offset

    @property
    def offset(self) -> timedelta:
        """Server time minus our time."""
        return self._offset

    @property
    def synced(self) -> bool:
        """True once a Time resource has been read."""
        return self._synced

    def local_now(self) -> datetime:
        """Our own clock (aware UTC)."""
        return self._base()

    def now(self) -> datetime:
        """The server's time now (aware UTC)."""
        return self._base() + self._offset

    def update(self, server_time: datetime, sent: datetime, received: datetime) -> None:
        """Learn the offset from a Time.currentTime read between local `sent` and `received`."""
        if server_time.tzinfo is None:
            raise ValueError("server_time must be timezone-aware")
        # TimeType is whole seconds, truncated: the server's clock read somewhere in
        # [server_time, server_time + 1 s) at a moment between `sent` and `received`. Any offset
        # in that window fits the reading; zero fits when our (NTP-disciplined) clock agrees, and
        # then it is the best answer: taking the window's middle instead would move every event
        # start by up to half a second, and by a different amount after every Time read.
        earliest = server_time - received
        latest = server_time + _RESOLUTION - sent
        if earliest <= timedelta(0) <= latest:
            offset = timedelta(0)
        elif self._synced and earliest <= self._offset <= latest:
            offset = self._offset  # the offset we have still fits: keep it steady
        else:
            offset = earliest + (latest - earliest) / 2
        news = not self._synced or abs(offset - self._offset) >= _LOG_THRESHOLD
        self._offset = offset
        self._synced = True
        if not news:
            return
        if self.distrusted:
            # 2030.5: the server's time rules, so follow it; but a utility's clock fault must show
            self.notices.note(
                "server clock",
                f"server clock is {offset.total_seconds():+.0f} s from ours (more than "
                f"{self._max_offset.total_seconds():.0f} s): following it, but events may look ended",
            )
        else:
            self.notices.clear("server clock")
            _LOGGER.info("server clock offset %+.1f s", offset.total_seconds())
