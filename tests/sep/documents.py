"""Realistic 2030.5 documents, built from models, shaped like a CSIP utility server and our gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.sep.dcap import DeviceCapability
from app.sep.der import (
    DER,
    ConnectStatusType,
    DefaultDERControl,
    DERAvailability,
    DERCapability,
    DERControl,
    DERControlBase,
    DERControlList,
    DERControlType,
    DERList,
    DERProgram,
    DERProgramList,
    DERSettings,
    DERStatus,
    DERType,
    FreqDroopType,
    ManufacturerStatusType,
    StateOfChargeStatusType,
    StatusValue,
)
from app.sep.edev import EndDevice, EndDeviceList, Registration
from app.sep.error import Error, ReasonCode
from app.sep.event import CurrentStatus, EventStatus
from app.sep.fsa import FunctionSetAssignments, FunctionSetAssignmentsList
from app.sep.metering_mirror import (
    SERVICE_KIND_ELECTRICITY,
    USAGE_POINT_STATUS_ON,
    AccumulationBehaviour,
    DataQualifier,
    FlowDirection,
    Kind,
    MirrorMeterReading,
    MirrorMeterReadingList,
    MirrorReadingSet,
    MirrorUsagePoint,
    MirrorUsagePointList,
    Reading,
    ReadingType,
    RoleFlags,
    UnitValueType,
    Uom,
)
from app.sep.response import DERControlResponse, ResponseRequired, ResponseStatus
from app.sep.tm import Time
from app.sep.types import (
    ActivePower,
    AmpereHour,
    ApparentPower,
    CurrentRMS,
    DateTimeInterval,
    FixedVar,
    Link,
    ListLink,
    PowerFactor,
    PowerFactorWithExcitation,
    ReactivePower,
    ReactiveSusceptance,
    VoltageRMS,
    WattHour,
)

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
SFDI = 167261211391
PEN = "0000A4F1"  # IANA PEN in the least-significant 32 bits of every mRID


def mrid(n: int) -> str:
    """A 128-bit mRID ending in our PEN."""
    return f"{n:024X}{PEN}"


# --- server side ---------------------------------------------------------------------------------


def device_capability() -> DeviceCapability:
    """/dcap as a CSIP server serves it."""
    return DeviceCapability(
        href="/dcap",
        pollRate=900,
        TimeLink=Link(href="/tm"),
        EndDeviceListLink=ListLink(href="/edev", all=1),
        MirrorUsagePointListLink=ListLink(href="/mup", all=0),
    )


def time_resource() -> Time:
    """/tm for Australia/Brisbane-like settings (no DST)."""
    return Time(
        href="/tm",
        pollRate=900,
        currentTime=NOW,
        dstEndTime=datetime(2026, 4, 5, 16, tzinfo=UTC),
        dstOffset=3600,
        dstStartTime=datetime(2026, 10, 4, 16, tzinfo=UTC),
        localTime=NOW + timedelta(hours=10),
        quality=4,
        tzOffset=36000,
    )


def end_device() -> EndDevice:
    """/edev/3 for our gateway."""
    return EndDevice(
        href="/edev/3",
        subscribable=0,
        DERListLink=ListLink(href="/edev/3/der", all=1),
        lFDI=LFDI,
        sFDI=SFDI,
        changedTime=NOW - timedelta(days=3),
        enabled=True,
        FunctionSetAssignmentsListLink=ListLink(href="/edev/3/fsa", all=1),
        postRate=60,
        RegistrationLink=Link(href="/edev/3/rg"),
        SubscriptionListLink=ListLink(href="/edev/3/sub", all=0),
    )


def end_device_list() -> EndDeviceList:
    """/edev with our device."""
    return EndDeviceList(
        href="/edev", all=1, results=1, subscribable=1, pollRate=300, EndDevice=(end_device(),)
    )


def registration() -> Registration:
    """/edev/3/rg."""
    return Registration(
        href="/edev/3/rg", pollRate=86400, dateTimeRegistered=NOW - timedelta(days=3), pIN=111115
    )


def fsa_list() -> FunctionSetAssignmentsList:
    """/edev/3/fsa with one assignment."""
    fsa = FunctionSetAssignments(
        href="/edev/3/fsa/1",
        DERProgramListLink=ListLink(href="/edev/3/fsa/1/derp", all=1),
        TimeLink=Link(href="/tm"),
        mRID=mrid(0xF5A),
        description="Wattsmart DER",
        version=2,
    )
    return FunctionSetAssignmentsList(
        href="/edev/3/fsa", all=1, results=1, pollRate=900, FunctionSetAssignments=(fsa,)
    )


def der_program_list() -> DERProgramList:
    """/edev/3/fsa/1/derp with one program."""
    program = DERProgram(
        href="/derp/1",
        mRID=mrid(0xD1),
        description="Battery program",
        version=1,
        ActiveDERControlListLink=ListLink(href="/derp/1/actderc", all=1),
        DefaultDERControlLink=Link(href="/derp/1/dderc"),
        DERControlListLink=ListLink(href="/derp/1/derc", all=3),
        primacy=1,
    )
    return DERProgramList(href="/edev/3/fsa/1/derp", all=1, results=1, pollRate=60, DERProgram=(program,))


def der_control(n: int, start: datetime = NOW, status: int = CurrentStatus.SCHEDULED) -> DERControl:
    """A 30-minute control alternating the setpoint modes the utility requires."""
    if n % 3 == 0:
        base = DERControlBase(opModFixedW=-5000 + n, rampTms=600)
    elif n % 3 == 1:
        base = DERControlBase(opModTargetW=ActivePower.from_watts(4000 + n), opModConnect=True)
    else:
        base = DERControlBase(opModMaxLimW=7500, opModEnergize=True)
    return DERControl(
        href=f"/derp/1/derc/{n}",
        replyTo="/rsps/1/rsp",
        responseRequired=ResponseRequired.RECEIVED | ResponseRequired.SPECIFIC,
        subscribable=0,
        mRID=mrid(0xC000 + n),
        description=f"Control {n}",
        version=0,
        creationTime=start - timedelta(hours=1),
        EventStatus=EventStatus(
            currentStatus=status, dateTime=start - timedelta(hours=1), potentiallySuperseded=False
        ),
        interval=DateTimeInterval(duration=1800, start=start + timedelta(minutes=30 * n)),
        randomizeDuration=0,
        randomizeStart=60,
        DERControlBase=base,
    )


def der_control_list(count: int = 3) -> DERControlList:
    """/derp/1/derc with `count` back-to-back controls."""
    controls = tuple(der_control(n) for n in range(count))
    return DERControlList(href="/derp/1/derc", all=count, results=count, DERControl=controls)


def full_der_control() -> DERControl:
    """A control using every DERControlBase field, to check schema order end to end."""
    curve = Link(href="/derp/1/dc/1")
    base = DERControlBase(
        opModConnect=True,
        opModEnergize=True,
        opModFixedPFAbsorbW=PowerFactorWithExcitation(displacement=95, excitation=False, multiplier=-2),
        opModFixedPFInjectW=PowerFactorWithExcitation(displacement=90, excitation=True, multiplier=-2),
        opModFixedVar=FixedVar(refType=1, value=-1500),
        opModFixedW=2500,
        opModFreqDroop=FreqDroopType(dBOF=36, dBUF=36, kOF=40, kUF=40, openLoopTms=500),
        opModFreqWatt=curve,
        opModHFRTMayTrip=curve,
        opModHFRTMustTrip=curve,
        opModHVRTMayTrip=curve,
        opModHVRTMomentaryCessation=curve,
        opModHVRTMustTrip=curve,
        opModLFRTMayTrip=curve,
        opModLFRTMustTrip=curve,
        opModLVRTMayTrip=curve,
        opModLVRTMomentaryCessation=curve,
        opModLVRTMustTrip=curve,
        opModMaxLimW=10000,
        opModTargetVar=ReactivePower(multiplier=0, value=-200),
        opModTargetW=ActivePower(multiplier=3, value=-5),
        opModVoltVar=curve,
        opModVoltWatt=curve,
        opModWattPF=curve,
        opModWattVar=curve,
        rampTms=1000,
    )
    return DERControl(
        href="/derp/1/derc/99",
        replyTo="/rsps/1/rsp",
        responseRequired=7,
        subscribable=1,
        mRID=mrid(0xC099),
        creationTime=NOW,
        EventStatus=EventStatus(
            currentStatus=CurrentStatus.ACTIVE,
            dateTime=NOW,
            potentiallySuperseded=True,
            potentiallySupersededTime=NOW,
            reason="overlaps program 2",
        ),
        interval=DateTimeInterval(duration=600, start=NOW),
        randomizeDuration=-30,
        randomizeStart=120,
        DERControlBase=base,
        deviceCategory=0x00020000,
    )


def default_der_control() -> DefaultDERControl:
    """/derp/1/dderc."""
    return DefaultDERControl(
        href="/derp/1/dderc",
        mRID=mrid(0xDDE),
        version=3,
        DERControlBase=DERControlBase(opModConnect=True, opModEnergize=True, opModMaxLimW=10000),
        setESDelay=30000,
        setESHighFreq=5020,
        setESHighVolt=11000,
        setESLowFreq=4950,
        setESLowVolt=9170,
        setESRampTms=30000,
        setESRandomDelay=0,
        setGradW=27,
        setSoftGradW=600,
    )


def der_list() -> DERList:
    """/edev/3/der with our one DER."""
    der = DER(
        href="/edev/3/der/1",
        AssociatedDERProgramListLink=ListLink(href="/edev/3/fsa/1/derp", all=1),
        CurrentDERProgramLink=Link(href="/derp/1"),
        DERAvailabilityLink=Link(href="/edev/3/der/1/dera"),
        DERCapabilityLink=Link(href="/edev/3/der/1/dercap"),
        DERSettingsLink=Link(href="/edev/3/der/1/derg"),
        DERStatusLink=Link(href="/edev/3/der/1/ders"),
    )
    return DERList(href="/edev/3/der", all=1, results=1, pollRate=900, DER=(der,))


def mirror_usage_point_list() -> MirrorUsagePointList:
    """/mup after our two POSTs."""
    mups = (mirror_usage_point_power(), mirror_usage_point_frequency())
    mups = tuple(
        MirrorUsagePoint(
            href=f"/mup/{i}",
            mRID=m.mRID,
            description=m.description,
            roleFlags=m.roleFlags,
            serviceCategoryKind=m.serviceCategoryKind,
            status=m.status,
            deviceLFDI=m.deviceLFDI,
            MirrorMeterReading=m.MirrorMeterReading,
            postRate=60,
        )
        for i, m in enumerate(mups)
    )
    return MirrorUsagePointList(href="/mup", all=2, results=2, pollRate=900, MirrorUsagePoint=mups)


def error_resource() -> Error:
    """An Error body a server returns with 400."""
    return Error(maxRetryDuration=60, reasonCode=ReasonCode.INVALID_REQUEST_VALUES)


# --- what the gateway sends ----------------------------------------------------------------------


def _reading_type(uom: int, multiplier: int) -> ReadingType:
    return ReadingType(
        accumulationBehaviour=AccumulationBehaviour.INSTANTANEOUS,
        commodity=1,
        dataQualifier=DataQualifier.NORMAL,
        flowDirection=FlowDirection.FORWARD,
        intervalLength=30,
        kind=Kind.POWER,
        phase=0,
        powerOfTenMultiplier=multiplier,
        uom=uom,
    )


def mirror_usage_point_power() -> MirrorUsagePoint:
    """POST /mup: the site's real power, created with only its ReadingType."""
    return MirrorUsagePoint(
        mRID=mrid(0x10),
        description="Battery real power",
        roleFlags=RoleFlags.IS_MIRROR | RoleFlags.IS_DER | RoleFlags.IS_SUBMETER,
        serviceCategoryKind=SERVICE_KIND_ELECTRICITY,
        status=USAGE_POINT_STATUS_ON,
        deviceLFDI=LFDI,
        MirrorMeterReading=(
            MirrorMeterReading(mRID=mrid(0x11), description="W", ReadingType=_reading_type(Uom.W, 0)),
        ),
        postRate=30,
    )


def mirror_usage_point_frequency() -> MirrorUsagePoint:
    """POST /mup: grid frequency in mHz."""
    return MirrorUsagePoint(
        mRID=mrid(0x20),
        description="Grid frequency",
        roleFlags=RoleFlags.IS_MIRROR | RoleFlags.IS_DER | RoleFlags.IS_SUBMETER,
        serviceCategoryKind=SERVICE_KIND_ELECTRICITY,
        status=USAGE_POINT_STATUS_ON,
        deviceLFDI=LFDI,
        MirrorMeterReading=(
            MirrorMeterReading(mRID=mrid(0x21), description="Hz", ReadingType=_reading_type(Uom.HZ, -3)),
        ),
    )


def mirror_meter_reading(n: int = 0) -> MirrorMeterReading:
    """POST /mup/0: the latest 30-second value as a single Reading."""
    start = NOW + timedelta(seconds=30 * n)
    return MirrorMeterReading(
        mRID=mrid(0x11),
        lastUpdateTime=start + timedelta(seconds=30),
        nextUpdateTime=start + timedelta(seconds=60),
        Reading=Reading(
            value=-3200 + n, timePeriod=DateTimeInterval(duration=30, start=start), qualityFlags=0
        ),
    )


def mirror_meter_reading_list(count: int = 10) -> MirrorMeterReadingList:
    """POST /mup/0 with several MirrorMeterReadings at once."""
    readings = tuple(mirror_meter_reading(n) for n in range(count))
    return MirrorMeterReadingList(all=count, results=count, MirrorMeterReading=readings)


def mirror_meter_reading_with_set() -> MirrorMeterReading:
    """POST /mup/1: a backlog of frequency values as a MirrorReadingSet."""
    readings = tuple(
        Reading(
            value=50012 - i, timePeriod=DateTimeInterval(duration=30, start=NOW + timedelta(seconds=30 * i))
        )
        for i in range(4)
    )
    reading_set = MirrorReadingSet(
        mRID=mrid(0x22), timePeriod=DateTimeInterval(duration=120, start=NOW), Reading=readings
    )
    return MirrorMeterReading(
        mRID=mrid(0x21), MirrorReadingSet=(reading_set,), ReadingType=_reading_type(Uom.HZ, -3)
    )


def mirror_reading_set() -> MirrorReadingSet:
    """A MirrorReadingSet on its own (POSTed to a mirror reading's set list)."""
    return mirror_meter_reading_with_set().MirrorReadingSet[0]


def der_control_response(status: int = ResponseStatus.EVENT_RECEIVED) -> DERControlResponse:
    """POST to a control's replyTo."""
    return DERControlResponse(createdDateTime=NOW, endDeviceLFDI=LFDI, status=status, subject=mrid(0xC000))


def der_status() -> DERStatus:
    """PUT /edev/3/der/1/ders once a minute."""
    return DERStatus(
        alarmStatus=0,
        genConnectStatus=ConnectStatusType(dateTime=NOW, value=0b111),
        inverterStatus=StatusValue(dateTime=NOW, value=4),
        localControlModeStatus=StatusValue(dateTime=NOW, value=0),
        manufacturerStatus=ManufacturerStatusType(dateTime=NOW, value="OK"),
        operationalModeStatus=StatusValue(dateTime=NOW, value=2),
        readingTime=NOW,
        stateOfChargeStatus=StateOfChargeStatusType(dateTime=NOW, value=6550),
        storageModeStatus=StatusValue(dateTime=NOW, value=1),
        storConnectStatus=ConnectStatusType(dateTime=NOW, value=0b111),
    )


def der_status_minimal() -> DERStatus:
    """The utility's mandatory DERStatus fields only."""
    return DERStatus(readingTime=NOW, stateOfChargeStatus=StateOfChargeStatusType(dateTime=NOW, value=5000))


def der_capability() -> DERCapability:
    """PUT /edev/3/der/1/dercap: a 5 kW / 13.5 kWh battery."""
    return DERCapability(
        modesSupported=DERControlType.CHARGE
        | DERControlType.DISCHARGE
        | DERControlType.CONNECT
        | DERControlType.ENERGIZE
        | DERControlType.FIXED_W
        | DERControlType.MAX_LIM_W
        | DERControlType.TARGET_W,
        rtgMaxA=CurrentRMS(multiplier=0, value=22),
        rtgMaxAh=AmpereHour(multiplier=0, value=280),
        rtgMaxChargeRateVA=ApparentPower.from_real(5000),
        rtgMaxChargeRateW=ActivePower.from_watts(5000),
        rtgMaxDischargeRateVA=ApparentPower.from_real(5000),
        rtgMaxDischargeRateW=ActivePower.from_watts(5000),
        rtgMaxV=VoltageRMS(multiplier=0, value=264),
        rtgMaxVA=ApparentPower.from_real(5000),
        rtgMaxVar=ReactivePower(multiplier=0, value=3000),
        rtgMaxVarNeg=ReactivePower(multiplier=0, value=-3000),
        rtgMaxW=ActivePower.from_watts(5000),
        rtgMaxWh=WattHour.from_real(13500),
        rtgMinPFOverExcited=PowerFactor(displacement=80, multiplier=-2),
        rtgMinPFUnderExcited=PowerFactor(displacement=80, multiplier=-2),
        rtgMinV=VoltageRMS(multiplier=0, value=180),
        rtgNormalCategory=2,
        rtgReactiveSusceptance=ReactiveSusceptance(multiplier=-3, value=5),
        rtgVNom=VoltageRMS(multiplier=0, value=230),
        type=DERType.OTHER_STORAGE,
    )


def der_settings() -> DERSettings:
    """PUT /edev/3/der/1/derg."""
    return DERSettings(
        modesEnabled=DERControlType.CHARGE | DERControlType.DISCHARGE | DERControlType.FIXED_W,
        setGradW=27,
        setMaxChargeRateW=ActivePower.from_watts(5000),
        setMaxDischargeRateW=ActivePower.from_watts(5000),
        setMaxVA=ApparentPower.from_real(5000),
        setMaxW=ActivePower.from_watts(5000),
        setMaxWh=WattHour.from_real(13500),
        setVNom=VoltageRMS(multiplier=0, value=230),
        updatedTime=NOW,
    )


def der_availability() -> DERAvailability:
    """PUT /edev/3/der/1/dera."""
    return DERAvailability(
        availabilityDuration=7200,
        maxChargeDuration=3600,
        readingTime=NOW,
        reserveChargePercent=1000,
        reservePercent=2000,
        statVarAvail=ReactivePower(multiplier=0, value=3000),
        statWAvail=ActivePower.from_watts(4200),
    )


def unit_value() -> UnitValueType:
    """A ReadingType conversion factor (rarely used, here for schema coverage)."""
    return UnitValueType(multiplier=0, unit=Uom.W, value=1)


SERVER_DOCUMENTS = {
    "DeviceCapability": device_capability,
    "Time": time_resource,
    "EndDeviceList": end_device_list,
    "EndDevice": end_device,
    "Registration": registration,
    "FunctionSetAssignmentsList": fsa_list,
    "DERProgramList": der_program_list,
    "DERControlList": der_control_list,
    "DERControl(all modes)": full_der_control,
    "DefaultDERControl": default_der_control,
    "DERList": der_list,
    "MirrorUsagePointList": mirror_usage_point_list,
    "Error": error_resource,
    "DERProgram": lambda: der_program_list().DERProgram[0],
    "FunctionSetAssignments": lambda: fsa_list().FunctionSetAssignments[0],
    "DER": lambda: der_list().DER[0],
    "MirrorUsagePoint(server copy)": lambda: mirror_usage_point_list().MirrorUsagePoint[0],
}

SENT_DOCUMENTS = {
    "DERControlResponse": der_control_response,
    "MirrorUsagePoint(W)": mirror_usage_point_power,
    "MirrorUsagePoint(Hz)": mirror_usage_point_frequency,
    "MirrorMeterReading": mirror_meter_reading,
    "MirrorMeterReadingList": mirror_meter_reading_list,
    "MirrorMeterReading(set)": mirror_meter_reading_with_set,
    "MirrorReadingSet": mirror_reading_set,
    "DERStatus": der_status,
    "DERStatus(minimal)": der_status_minimal,
    "DERCapability": der_capability,
    "DERSettings": der_settings,
    "DERAvailability": der_availability,
    "Reading": lambda: mirror_meter_reading().Reading,
    "ReadingType": lambda: mirror_meter_reading_with_set().ReadingType,
}
