"""Distributed Energy Resources (2030.5-2018 §10.10, sep.xsd DER* types).

Server side: DERProgramList → DERProgram → DERControlList / DefaultDERControl.
Device side (the gateway PUTs these): DERCapability, DERSettings, DERStatus, DERAvailability.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, IntFlag
from typing import Annotated, Any, Final

from app.sep.event import CurrentStatus, EventStatus, RandomizableEvent
from app.sep.types import (
    ATTR,
    CSIPAUS,
    LOCAL,
    ActivePower,
    AmpereHour,
    ApparentPower,
    CurrentRMS,
    DateTimeInterval,
    FixedVar,
    HexBinary8,
    HexBinary32,
    Int16,
    Link,
    List,
    ListLink,
    PerCent,
    PowerFactor,
    PowerFactorWithExcitation,
    ReactivePower,
    ReactiveSusceptance,
    Resource,
    Salvage,
    SignedPerCent,
    SubscribableIdentifiedObject,
    SubscribableList,
    SubscribableResource,
    TimeType,
    UInt8,
    UInt16,
    UInt32,
    VoltageRMS,
    WattHour,
)


class DERControlType(IntFlag):
    """Bits of DERCapability.modesSupported / DERSettings.modesEnabled (HexBinary32)."""

    CHARGE = 1 << 0
    DISCHARGE = 1 << 1
    CONNECT = 1 << 2
    ENERGIZE = 1 << 3
    FIXED_PF_ABSORB_W = 1 << 4
    FIXED_PF_INJECT_W = 1 << 5
    FIXED_VAR = 1 << 6
    FIXED_W = 1 << 7
    FREQ_DROOP = 1 << 8
    FREQ_WATT = 1 << 9
    MAX_LIM_W = 1 << 20
    TARGET_VAR = 1 << 21
    TARGET_W = 1 << 22
    VOLT_VAR = 1 << 23
    VOLT_WATT = 1 << 24
    WATT_PF = 1 << 25
    WATT_VAR = 1 << 26


class DERType(IntEnum):
    """DERCapability.type values."""

    NOT_APPLICABLE = 0
    VIRTUAL_OR_MIXED = 1
    RECIPROCATING_ENGINE = 2
    FUEL_CELL = 3
    PHOTOVOLTAIC = 4
    COMBINED_HEAT_AND_POWER = 5
    OTHER_GENERATION = 6
    OTHER_STORAGE = 80
    ELECTRIC_VEHICLE = 81
    EVSE = 82
    COMBINED_PV_AND_STORAGE = 83


# --- programs and controls (server side) -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DERProgram(SubscribableIdentifiedObject):
    """A program of controls; lower primacy wins when programs overlap (§12.1.3.1)."""

    ActiveDERControlListLink: ListLink | None = None
    DefaultDERControlLink: Link | None = None
    DERControlListLink: ListLink | None = None
    DERCurveListLink: ListLink | None = None
    primacy: UInt8


@dataclass(frozen=True, slots=True, kw_only=True)
class DERProgramList(SubscribableList):
    """A page of DERPrograms."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    DERProgram: tuple[DERProgram, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FreqDroopType:
    """Frequency-watt parameterized mode settings."""

    dBOF: UInt32
    dBUF: UInt32
    kOF: UInt16
    kUF: UInt16
    openLoopTms: UInt16


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControlBase:
    """The operating modes a control (or the default control) asks for; None = not controlled.

    opModFixedW is SignedPerCent of setMaxW (hundredths, + = discharge); opModMaxLimW is PerCent of
    setMaxW; opModTargetW is plain ActivePower; rampTms is hundredths of a second.
    """

    opModConnect: bool | None = None
    opModEnergize: bool | None = None
    opModFixedPFAbsorbW: PowerFactorWithExcitation | None = None
    opModFixedPFInjectW: PowerFactorWithExcitation | None = None
    opModFixedVar: FixedVar | None = None
    opModFixedW: SignedPerCent | None = None
    opModFreqDroop: FreqDroopType | None = None
    opModFreqWatt: Link | None = None
    opModHFRTMayTrip: Link | None = None
    opModHFRTMustTrip: Link | None = None
    opModHVRTMayTrip: Link | None = None
    opModHVRTMomentaryCessation: Link | None = None
    opModHVRTMustTrip: Link | None = None
    opModLFRTMayTrip: Link | None = None
    opModLFRTMustTrip: Link | None = None
    opModLVRTMayTrip: Link | None = None
    opModLVRTMomentaryCessation: Link | None = None
    opModLVRTMustTrip: Link | None = None
    opModMaxLimW: PerCent | None = None
    opModTargetVar: ReactivePower | None = None
    opModTargetW: ActivePower | None = None
    opModVoltVar: Link | None = None
    opModVoltWatt: Link | None = None
    opModWattPF: Link | None = None
    opModWattVar: Link | None = None
    rampTms: UInt16 | None = None
    # CSIP-AUS extension (csipaus namespace), read whatever the profile: limits at the connection
    # point / of this DER, in watts
    opModImpLimW: Annotated[ActivePower | None, CSIPAUS] = None
    opModExpLimW: Annotated[ActivePower | None, CSIPAUS] = None
    opModGenLimW: Annotated[ActivePower | None, CSIPAUS] = None
    opModLoadLimW: Annotated[ActivePower | None, CSIPAUS] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControl(RandomizableEvent):
    """A scheduled DER event: interval, status, randomization and the modes it sets."""

    DERControlBase: DERControlBase
    deviceCategory: HexBinary32 | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidDERControl(DERControl):
    """Stands in for a listed DERControl that failed validation, so that it alone is rejected.

    It keeps what answering it needs (mRID, replyTo, responseRequired, deviceCategory, and the
    times and status where they were valid) and asks for nothing: its DERControlBase is empty,
    which a device rejects as invalid (253). `problem` says what was wrong; it is not on the wire.
    """

    problem: str = field(metadata=LOCAL)


_EPOCH: Final = datetime.fromtimestamp(0, UTC)


def _stand_in(fields: Mapping[str, Any], problem: str) -> InvalidDERControl | None:
    """The InvalidDERControl for a list item that failed to parse; None without a readable mRID."""
    mrid = fields.get("mRID")
    if mrid is None:
        return None  # nothing to answer it by, nothing to tell it apart from the others
    status = EventStatus(currentStatus=CurrentStatus.SCHEDULED, dateTime=_EPOCH, potentiallySuperseded=False)
    return InvalidDERControl(
        href=fields.get("href"),
        replyTo=fields.get("replyTo"),
        responseRequired=fields.get("responseRequired", 0),
        subscribable=fields.get("subscribable", 0),
        mRID=mrid,
        creationTime=fields.get("creationTime", _EPOCH),
        EventStatus=fields.get("EventStatus", status),
        # unreadable: no time to run, which is itself invalid
        interval=fields.get("interval", DateTimeInterval(duration=0, start=_EPOCH)),
        DERControlBase=DERControlBase(),
        deviceCategory=fields.get("deviceCategory"),
        problem=problem,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControlList(SubscribableList):
    """A page of DERControls (also ActiveDERControlList); sep.xsd gives it no pollRate of its own.

    One invalid DERControl does not refuse the list: it is parsed as an InvalidDERControl (or,
    without a readable mRID, dropped and logged) and every other control stays as served.
    """

    DERControl: tuple[Annotated[DERControl, Salvage(_stand_in)], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultDERControl(SubscribableIdentifiedObject):
    """What to do when no event is active; a present setGradW updates DERSettings.setGradW."""

    DERControlBase: DERControlBase
    setESDelay: UInt32 | None = None
    setESHighFreq: UInt16 | None = None
    setESHighVolt: Int16 | None = None
    setESLowFreq: UInt16 | None = None
    setESLowVolt: Int16 | None = None
    setESRampTms: UInt32 | None = None
    setESRandomDelay: UInt32 | None = None
    setGradW: UInt16 | None = None
    setSoftGradW: UInt16 | None = None


# --- the device (client side) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DER(SubscribableResource):
    """Links from one DER to its programs and its capability/settings/status/availability."""

    AssociatedDERProgramListLink: ListLink | None = None
    AssociatedUsagePointLink: Link | None = None
    CurrentDERProgramLink: Link | None = None
    DERAvailabilityLink: Link | None = None
    DERCapabilityLink: Link | None = None
    DERSettingsLink: Link | None = None
    DERStatusLink: Link | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DERList(List):
    """A page of DERs."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    DER: tuple[DER, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DERCapability(Resource):
    """Nameplate ratings; the gateway PUTs it at start-up and on change."""

    modesSupported: HexBinary32
    rtgAbnormalCategory: UInt8 | None = None
    rtgMaxA: CurrentRMS | None = None
    rtgMaxAh: AmpereHour | None = None
    rtgMaxChargeRateVA: ApparentPower | None = None
    rtgMaxChargeRateW: ActivePower | None = None
    rtgMaxDischargeRateVA: ApparentPower | None = None
    rtgMaxDischargeRateW: ActivePower | None = None
    rtgMaxV: VoltageRMS | None = None
    rtgMaxVA: ApparentPower | None = None
    rtgMaxVar: ReactivePower | None = None
    rtgMaxVarNeg: ReactivePower | None = None
    rtgMaxW: ActivePower
    rtgMaxWh: WattHour | None = None
    rtgMinPFOverExcited: PowerFactor | None = None
    rtgMinPFUnderExcited: PowerFactor | None = None
    rtgMinV: VoltageRMS | None = None
    rtgNormalCategory: UInt8 | None = None
    rtgOverExcitedPF: PowerFactor | None = None
    rtgOverExcitedW: ActivePower | None = None
    rtgReactiveSusceptance: ReactiveSusceptance | None = None
    rtgUnderExcitedPF: PowerFactor | None = None
    rtgUnderExcitedW: ActivePower | None = None
    rtgVNom: VoltageRMS | None = None
    type: UInt8
    doeModesSupported: Annotated[HexBinary8 | None, CSIPAUS] = None
    """CSIP-AUS (csipaus namespace): the limits obeyed; bit 0 export, 1 import, 2 generation, 3 load."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DERSettings(SubscribableResource):
    """The limits the device is actually set to; PUT at start-up and on change."""

    modesEnabled: HexBinary32 | None = None
    setESDelay: UInt32 | None = None
    setESHighFreq: UInt16 | None = None
    setESHighVolt: Int16 | None = None
    setESLowFreq: UInt16 | None = None
    setESLowVolt: Int16 | None = None
    setESRampTms: UInt32 | None = None
    setESRandomDelay: UInt32 | None = None
    setGradW: UInt16
    setMaxA: CurrentRMS | None = None
    setMaxAh: AmpereHour | None = None
    setMaxChargeRateVA: ApparentPower | None = None
    setMaxChargeRateW: ActivePower | None = None
    setMaxDischargeRateVA: ApparentPower | None = None
    setMaxDischargeRateW: ActivePower | None = None
    setMaxV: VoltageRMS | None = None
    setMaxVA: ApparentPower | None = None
    setMaxVar: ReactivePower | None = None
    setMaxVarNeg: ReactivePower | None = None
    setMaxW: ActivePower
    setMaxWh: WattHour | None = None
    setMinPFOverExcited: PowerFactor | None = None
    setMinPFUnderExcited: PowerFactor | None = None
    setMinV: VoltageRMS | None = None
    setSoftGradW: UInt16 | None = None
    setVNom: VoltageRMS | None = None
    setVRef: VoltageRMS | None = None
    setVRefOfs: VoltageRMS | None = None
    updatedTime: TimeType
    doeModesEnabled: Annotated[HexBinary8 | None, CSIPAUS] = None
    """CSIP-AUS (csipaus namespace): the limits in use, bits as in DERCapability.doeModesSupported."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectStatusType:
    """Connection status bitmap (bit0 connected, 1 available, 2 operating, 3 test, 4 fault)."""

    dateTime: TimeType
    value: HexBinary8


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusValue:
    """A UInt8 status code and when it was read (inverter/local-control/operational/storage mode)."""

    dateTime: TimeType
    value: UInt8


@dataclass(frozen=True, slots=True, kw_only=True)
class ManufacturerStatusType:
    """A manufacturer status string (String6)."""

    dateTime: TimeType
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StateOfChargeStatusType:
    """State of charge in hundredths of a percent."""

    dateTime: TimeType
    value: PerCent


@dataclass(frozen=True, slots=True, kw_only=True)
class DERStatus(SubscribableResource):
    """Live status; the gateway PUTs it once a minute (readingTime and stateOfChargeStatus)."""

    alarmStatus: HexBinary32 | None = None
    genConnectStatus: ConnectStatusType | None = None
    inverterStatus: StatusValue | None = None
    localControlModeStatus: StatusValue | None = None
    manufacturerStatus: ManufacturerStatusType | None = None
    operationalModeStatus: StatusValue | None = None
    readingTime: TimeType
    stateOfChargeStatus: StateOfChargeStatusType | None = None
    storageModeStatus: StatusValue | None = None
    storConnectStatus: ConnectStatusType | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DERAvailability(SubscribableResource):
    """What the DER can deliver right now and for how long."""

    availabilityDuration: UInt32 | None = None
    maxChargeDuration: UInt32 | None = None
    readingTime: TimeType
    reserveChargePercent: PerCent | None = None
    reservePercent: PerCent | None = None
    statVarAvail: ReactivePower | None = None
    statWAvail: ActivePower | None = None
