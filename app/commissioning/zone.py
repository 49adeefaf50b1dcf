"""The time zone the status page shows times in: the configured one, else the box's own."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import UTC, tzinfo
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

LOCALTIME = Path("/etc/localtime")


def page_zone(name: str, localtime: Path = LOCALTIME) -> tzinfo:
    """`name` as a zone; "localtime" = the zone of `localtime` (the box's own), UTC when unreadable."""
    if name != "localtime":
        return zoneinfo.ZoneInfo(name)
    try:
        with localtime.open("rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError) as exc:
        _LOGGER.warning(
            "status page: cannot read the box's time zone from %s (%s); showing UTC", localtime, exc
        )
        return UTC
