"""The gateway's MirrorUsagePoints, as the poller's snapshot lists them; created once when missing.

Telemetry never reads the MirrorUsagePointList itself: the session's poller reads it at its
pollRate, and every MUP's href and postRate come from the latest snapshot. Creating a missing MUP
re-reads the list once, through that same poller.
"""

from __future__ import annotations

import logging

from app.client.errors import Rediscover
from app.client.notices import Notices, note_rate
from app.client.port import ServerPort
from app.client.snapshot import ServerTree
from app.telemetry.metering_mirror import mirror_usage_point, mup_mrid
from app.telemetry.points import DataPoint

_LOGGER = logging.getLogger(__name__)


class Mirrors:
    """One MirrorUsagePoint per data point: its href and the (bounded) postRate the server gave it."""

    def __init__(
        self,
        server: ServerPort,
        lfdi: str,
        qualifiers: dict[str, int],
        *,
        min_rate_s: int = 10,
        max_rate_s: int = 86400,
        notices: Notices | None = None,
    ) -> None:
        self._server = server
        self._lfdi = lfdi
        self._qualifiers = qualifiers
        self._min_rate = min_rate_s
        self._max_rate = max_rate_s
        self._notices = notices if notices is not None else Notices()
        self._hrefs: dict[str, str] = {}
        self._post_rates: dict[str, int | None] = {}
        #: MUPs we created that the list did not show yet (Location from the POST)
        self._created: dict[str, str] = {}

    def href(self, point: DataPoint) -> str | None:
        """The MUP's href, once known."""
        return self._hrefs.get(point.key)

    def post_rate(self, point: DataPoint) -> int | None:
        """The server's postRate for the MUP of `point` (bounded), or None when it gave none."""
        return self._post_rates.get(point.key)

    def sync(self, tree: ServerTree | None, points: tuple[DataPoint, ...]) -> None:
        """Take every MUP's href and postRate from the latest snapshot (no I/O)."""
        if tree is None:
            return
        listed = {m.mRID.upper(): m for m in tree.mirror_usage_points if m.href}
        for point in points:
            mup = listed.get(mup_mrid(self._lfdi, point))
            if mup is None or mup.href is None:
                created = self._created.get(point.key)
                if created is None:
                    self._hrefs.pop(point.key, None)
                else:
                    self._hrefs[point.key] = created
                continue
            self._created.pop(point.key, None)
            rate = note_rate(
                self._notices,
                f"postRate {point.key}",
                f"mirror {mup.href} postRate",
                mup.postRate,
                self._min_rate,
                self._max_rate,
            )
            if self._hrefs.get(point.key) != mup.href or self._post_rates.get(point.key, -1) != rate:
                _LOGGER.info("%s mirror %s: server postRate %s s", point.key, mup.href, rate)
            self._hrefs[point.key] = mup.href
            self._post_rates[point.key] = rate

    async def ensure(self, tree: ServerTree | None, points: tuple[DataPoint, ...]) -> None:
        """Create the MUPs the snapshot's list lacks, then re-read the list once through the poller."""
        self.sync(tree, points)
        if tree is None or tree.mirror_usage_point_list_href is None:
            return  # no list read yet, or the server offers none: readings wait in the outbox
        list_href = tree.mirror_usage_point_list_href
        missing = [p for p in points if p.key not in self._hrefs]
        if not missing:
            return
        for point in missing:
            mup = mirror_usage_point(point, self._lfdi, self._qualifiers.get(point.key, 0))
            location = await self._server.post(list_href, mup)
            _LOGGER.info(
                "Created mirror usage point %s for %s", location or "(no Location)", point.description
            )
            if location is not None:
                self._created[point.key] = location
        self.sync(await self._server.refresh(list_href), points)
        for point in missing:
            if point.key not in self._hrefs:
                raise Rediscover(
                    f"server created no MirrorUsagePoint for {mup_mrid(self._lfdi, point)}", href=list_href
                )

    async def lost(self, point: DataPoint, tree: ServerTree | None) -> None:
        """The server answered 404 for `point`'s MUP: re-read the list once; the next cycle re-creates it."""
        href = self._hrefs.pop(point.key, None)
        _LOGGER.warning("Mirror usage point %s (%s) is gone from the server", href, point.key)
        self._post_rates.pop(point.key, None)
        self._created.pop(point.key, None)
        if tree is not None and tree.mirror_usage_point_list_href is not None:
            fresh = await self._server.refresh(tree.mirror_usage_point_list_href)
            if fresh is not None and any(m.href == href for m in fresh.mirror_usage_points):
                return  # still listed: the server 404s a MUP it lists; try it again at the next post
            self.sync(fresh, (point,))
