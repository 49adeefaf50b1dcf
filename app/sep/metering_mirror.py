"""Metering mirror: how the gateway reports telemetry (2030.5-2018 §10.6, sep.xsd Mirror* types)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Annotated

from app.sep.types import (
    ATTR,
    DateTimeInterval,
    HexBinary16,
    HexBinary160,
    IdentifiedObject,
    Int32,
    Int48,
    List,
    PowerOfTenMultiplierType,
    Resource,
    TimeType,
    UInt8,
    UInt32,
    UInt48,
)


class Uom(IntEnum):
    """ReadingType.uom codes the gateway uses."""

    A = 5
    V = 29
    HZ = 33
    W = 38
    VA = 61
    VAR = 63
    COS_THETA = 65
    WH = 72
    AH = 106


class Kind(IntEnum):
    """ReadingType.kind codes."""

    NOT_APPLICABLE = 0
    CURRENCY = 3
    DEMAND = 8
    ENERGY = 12
    POWER = 37


class DataQualifier(IntEnum):
    """ReadingType.dataQualifier codes."""

    NOT_APPLICABLE = 0
    AVERAGE = 2
    MAXIMUM = 8
    MINIMUM = 9
    NORMAL = 12


class AccumulationBehaviour(IntEnum):
    """ReadingType.accumulationBehaviour codes."""

    NOT_APPLICABLE = 0
    CUMULATIVE = 3
    DELTA_DATA = 4
    INDICATING = 6
    SUMMATION = 9
    INSTANTANEOUS = 12


class FlowDirection(IntEnum):
    """ReadingType.flowDirection codes."""

    NOT_APPLICABLE = 0
    FORWARD = 1  # delivered to the customer
    REVERSE = 19  # received from the customer


class RoleFlags(IntFlag):
    """UsagePointBase.roleFlags bits (HexBinary16)."""

    IS_MIRROR = 1 << 0
    IS_PREMISES_AGGREGATION_POINT = 1 << 1
    IS_PEV = 1 << 2
    IS_DER = 1 << 3
    IS_REVENUE_QUALITY = 1 << 4
    IS_DC = 1 << 5
    IS_SUBMETER = 1 << 6


SERVICE_KIND_ELECTRICITY = 0
USAGE_POINT_STATUS_ON = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingType(Resource):
    """What a reading measures: unit, kind, qualifier and the power-of-ten of its values."""

    accumulationBehaviour: UInt8 | None = None
    calorificValue: UnitValueType | None = None
    commodity: UInt8 | None = None
    conversionFactor: UnitValueType | None = None
    dataQualifier: UInt8 | None = None
    flowDirection: UInt8 | None = None
    intervalLength: UInt32 | None = None
    kind: UInt8 | None = None
    maxNumberOfIntervals: UInt8 | None = None
    numberOfConsumptionBlocks: UInt8 | None = None
    numberOfTouTiers: UInt8 | None = None
    phase: UInt8 | None = None
    powerOfTenMultiplier: PowerOfTenMultiplierType | None = None
    subIntervalLength: UInt32 | None = None
    supplyLimit: UInt48 | None = None
    tieredConsumptionBlocks: bool | None = None
    uom: UInt8 | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitValueType:
    """A value × 10^multiplier with a unit of measure."""

    multiplier: PowerOfTenMultiplierType
    unit: UInt8
    value: Int32


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading(Resource):
    """One value (× 10^ReadingType.powerOfTenMultiplier) for one time period."""

    subscribable: Annotated[UInt8, ATTR] = 0
    consumptionBlock: UInt8 | None = None
    qualityFlags: HexBinary16 | None = None
    timePeriod: DateTimeInterval | None = None
    touTier: UInt8 | None = None
    value: Int48 | None = None
    localID: HexBinary16 | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorReadingSet(IdentifiedObject):
    """A batch of Readings covering timePeriod."""

    timePeriod: DateTimeInterval
    Reading: tuple[Reading, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorMeterReading(IdentifiedObject):
    """One measured quantity of a mirror usage point: its ReadingType and its latest values."""

    lastUpdateTime: TimeType | None = None
    MirrorReadingSet: tuple[MirrorReadingSet, ...] = ()
    nextUpdateTime: TimeType | None = None
    Reading: Reading | None = None
    ReadingType: ReadingType | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorMeterReadingList(List):
    """Several MirrorMeterReadings posted in one request."""

    MirrorMeterReading: tuple[MirrorMeterReading, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorUsagePoint(IdentifiedObject):
    """A usage point the gateway mirrors to the server; the server may rewrite postRate (seconds)."""

    roleFlags: HexBinary16
    serviceCategoryKind: UInt8
    status: UInt8
    deviceLFDI: HexBinary160
    MirrorMeterReading: tuple[MirrorMeterReading, ...] = ()
    postRate: UInt32 | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorUsagePointList(List):
    """A page of MirrorUsagePoints."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    MirrorUsagePoint: tuple[MirrorUsagePoint, ...] = ()
