"""The gateway's MirrorUsagePoints on the server: found or created once, their postRate kept fresh."""

from __future__ import annotations

import logging
from typing import Final

from app.client.errors import Rediscover
from app.sep.metering_mirror import MirrorUsagePoint, MirrorUsagePointList
from app.store import StateTable
from app.telemetry.metering_mirror import mirror_usage_point, mup_mrid
from app.telemetry.points import DataPoint
from app.telemetry.uplink import Uplink

_LOGGER = logging.getLogger(__name__)

_PAGE: Final = 50


class Mirrors:
    """One MirrorUsagePoint per data point: its href (persisted) and the postRate the server gave it."""

    def __init__(
        self,
        uplink: Uplink,
        state: StateTable,
        list_href: str | None,
        lfdi: str,
        qualifiers: dict[str, int],
    ) -> None:
        self._uplink = uplink
        self._state = state
        self._list_href = list_href
        self._list_read = False
        self._lfdi = lfdi
        self._qualifiers = qualifiers
        self._hrefs: dict[str, str] = {}
        self._post_rates: dict[str, int | None] = {}
        self.pollRate: int | None = None
        """The MirrorUsagePointList's pollRate: how often the MUPs are re-read for their postRate."""

    @property
    def list_href(self) -> str | None:
        """The MirrorUsagePointList, where MUPs are found and created; None while the server has none."""
        return self._list_href

    @list_href.setter
    def list_href(self, href: str | None) -> None:
        if href != self._list_href:
            self._list_href = href
            self._list_read = False

    def href(self, point: DataPoint) -> str | None:
        """The MUP's href, once known."""
        return self._hrefs.get(point.key)

    def post_rate(self, point: DataPoint) -> int | None:
        """The server's postRate for the MUP of `point`, or None when it gave none."""
        return self._post_rates.get(point.key)

    async def ensure(self, point: DataPoint) -> str | None:
        """The href of `point`'s MUP: remembered, found on the server by mRID, or created (in that order).

        None while the server offers no MirrorUsagePointList to find or create it in.
        """
        href = self._hrefs.get(point.key)
        if href is not None:
            return href
        mrid = mup_mrid(self._lfdi, point)
        key = f"mup:{mrid}"
        href = self._state.get(key)
        if href is None:
            if self.list_href is None:
                return None
            href = await self._find(mrid)
            if href is None:
                href = await self._create(point, self.list_href)
            self._state.set(key, href)
        self._hrefs[point.key] = href
        await self.refresh(point)
        return href

    async def refresh(self, point: DataPoint) -> None:
        """Re-read the MUP for its postRate; a MUP the server lost is looked up or created again."""
        href = self._hrefs.get(point.key)
        if href is None:
            await self.ensure(point)
            return
        if not self._list_read and self.list_href is not None:
            # MUPs remembered from an earlier run are not looked up in the list, which alone
            # carries the pollRate: read its head once, or the default rate would apply until
            # some MUP is lost and found again.
            page = await self._uplink.get(f"{self.list_href}?s=0&l=1", MirrorUsagePointList)
            self._learn_poll_rate(page)
        try:
            mup = await self._uplink.get(href, MirrorUsagePoint)
        except Rediscover:
            _LOGGER.warning("Mirror usage point %s (%s) is gone from the server; recreating", href, point.key)
            self.forget(point)
            await self.ensure(point)
            return
        old = self._post_rates.get(point.key, -1)
        if mup.postRate != old:
            _LOGGER.info("%s mirror %s: server postRate %s s", point.key, href, mup.postRate)
        self._post_rates[point.key] = mup.postRate

    def forget(self, point: DataPoint) -> None:
        """Drop what we know of `point`'s MUP (the server no longer has it)."""
        self._hrefs.pop(point.key, None)
        self._post_rates.pop(point.key, None)
        self._state.delete(f"mup:{mup_mrid(self._lfdi, point)}")

    async def _find(self, mrid: str) -> str | None:
        if self.list_href is None:
            return None
        start = 0
        while True:
            # Always page explicitly: a server may default `l` to 1 (envoy does).
            page = await self._uplink.get(f"{self.list_href}?s={start}&l={_PAGE}", MirrorUsagePointList)
            self._learn_poll_rate(page)
            for mup in page.MirrorUsagePoint:
                if mup.mRID.upper() == mrid and mup.href:
                    _LOGGER.info("Found existing mirror usage point %s for mRID %s", mup.href, mrid)
                    return mup.href
            start += len(page.MirrorUsagePoint)
            if not page.MirrorUsagePoint or start >= page.all:
                return None

    async def _create(self, point: DataPoint, list_href: str) -> str:
        mup = mirror_usage_point(point, self._lfdi, self._qualifiers.get(point.key, 0))
        location = await self._uplink.post(list_href, mup)
        if location is None:
            # Some servers answer 201 without Location; the list tells us where it went.
            location = await self._find(mup.mRID)
            if location is None:
                raise Rediscover(f"server created no MirrorUsagePoint for {mup.mRID}", href=list_href)
        _LOGGER.info("Created mirror usage point %s for %s", location, point.description)
        return location

    def _learn_poll_rate(self, page: MirrorUsagePointList) -> None:
        if page.pollRate != self.pollRate:
            _LOGGER.info("mirror usage point list %s: server pollRate %s s", self.list_href, page.pollRate)
        self.pollRate = page.pollRate
        self._list_read = True
