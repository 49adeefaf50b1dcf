"""Time: the server's clock (2030.5-2018 §10.2, sep.xsd Time). Named `tm` after its URL, not `time`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from app.sep.types import ATTR, Resource, TimeOffsetType, TimeType, UInt8, UInt32


@dataclass(frozen=True, slots=True, kw_only=True)
class Time(Resource):
    """Server time; the gateway schedules on currentTime plus the local clock offset."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    currentTime: TimeType
    dstEndTime: TimeType
    dstOffset: TimeOffsetType
    dstStartTime: TimeType
    localTime: TimeType | None = None
    quality: UInt8
    tzOffset: TimeOffsetType
