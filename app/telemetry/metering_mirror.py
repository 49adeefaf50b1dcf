"""Metering mirror documents: the MirrorUsagePoint of each data point and the readings posted to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from app.sep.metering_mirror import (
    AccumulationBehaviour,
    FlowDirection,
    Kind,
    MirrorMeterReading,
    MirrorReadingSet,
    MirrorUsagePoint,
    Reading,
    ReadingType,
    RoleFlags,
)
from app.sep.types import DateTimeInterval
from app.telemetry.grid import tick_time
from app.telemetry.points import DataPoint, derive_mrid

# A battery inverter's own meter mirrored for the utility: a DER submeter, not the site's meter.
ROLE_FLAGS: Final = RoleFlags.IS_MIRROR | RoleFlags.IS_DER | RoleFlags.IS_SUBMETER
#: the site meter mirrored: the premises' aggregation point at the grid connection
SITE_ROLE_FLAGS: Final = RoleFlags.IS_MIRROR | RoleFlags.IS_PREMISES_AGGREGATION_POINT
SERVICE_CATEGORY_ELECTRICITY: Final = 0
STATUS_ON: Final = 1
COMMODITY_ELECTRICITY_SECONDARY: Final = 1


def mup_mrid(lfdi: str, point: DataPoint) -> str:
    """The stable mRID of the MirrorUsagePoint of `point`."""
    return derive_mrid(lfdi, "mup", point.key)


def mmr_mrid(lfdi: str, point: DataPoint) -> str:
    """The stable mRID of the MirrorMeterReading of `point`."""
    return derive_mrid(lfdi, "mmr", point.key)


def reading_type(point: DataPoint, data_qualifier: int) -> ReadingType:
    """An instantaneous power-kind reading of `point` at its wire resolution."""
    return ReadingType(
        accumulationBehaviour=AccumulationBehaviour.INSTANTANEOUS,
        commodity=COMMODITY_ELECTRICITY_SECONDARY,
        dataQualifier=data_qualifier,
        flowDirection=FlowDirection.FORWARD,
        kind=Kind.POWER,
        powerOfTenMultiplier=point.power_of_ten,
        uom=point.uom,
    )


def mirror_usage_point(point: DataPoint, lfdi: str, data_qualifier: int) -> MirrorUsagePoint:
    """The MirrorUsagePoint POSTed once to create the mirror of `point` (no postRate: the server's call)."""
    reading = MirrorMeterReading(
        mRID=mmr_mrid(lfdi, point),
        description=point.description,
        ReadingType=reading_type(point, data_qualifier),
    )
    return MirrorUsagePoint(
        mRID=mup_mrid(lfdi, point),
        description=point.description,
        roleFlags=SITE_ROLE_FLAGS if point.site else ROLE_FLAGS,
        serviceCategoryKind=SERVICE_CATEGORY_ELECTRICITY,
        status=STATUS_ON,
        deviceLFDI=lfdi,
        MirrorMeterReading=(reading,),
    )


def readings_post(
    point: DataPoint, lfdi: str, readings: Sequence[tuple[int, int, int]], interval_s: int
) -> MirrorMeterReading:
    """One POST of `readings` (tick, wire value, quality flags), oldest first: Reading or MirrorReadingSet.

    Quality flags 0 (a reading that passed every check) are left out; others go in qualityFlags.
    """
    if not readings:
        raise ValueError("nothing to post")
    # Each reading stands for the 30-s interval that starts at its tick.
    items = tuple(
        Reading(
            qualityFlags=quality or None,
            timePeriod=DateTimeInterval(start=tick_time(tick), duration=interval_s),
            value=value,
        )
        for tick, value, quality in readings
    )
    mrid = mmr_mrid(lfdi, point)
    if len(items) == 1:
        return MirrorMeterReading(mRID=mrid, Reading=items[0])
    first, last = readings[0][0], readings[-1][0]
    reading_set = MirrorReadingSet(
        # Derived from the first tick: a batch re-sent after a crash carries the same mRID, so a
        # server can recognise it.
        mRID=derive_mrid(lfdi, "mrs", point.key, str(first)),
        timePeriod=DateTimeInterval(start=tick_time(first), duration=last - first + interval_s),
        Reading=items,
    )
    return MirrorMeterReading(mRID=mrid, MirrorReadingSet=(reading_set,))
