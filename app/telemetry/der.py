"""DER reports the gateway PUTs: DERStatus each minute, DERCapability and DERSettings on change."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Final

from app.sep.der import (
    ConnectStatusType,
    DERCapability,
    DERControlType,
    DERSettings,
    DERStatus,
    DERType,
    StateOfChargeStatusType,
    StatusValue,
)
from app.sep.types import ActivePower, WattHour, hundredths
from hal.inverter import ConnectionStatus, OperatingStatus, Ratings, Telemetry
from hal.inverter.base import first_known

_LOGGER = logging.getLogger(__name__)

# What the control engine executes on a battery (app.control.modes): charge, discharge, opModFixedW,
# opModTargetW, opModMaxLimW, and opModConnect / opModEnergize (false: it stops exchanging power).
MODES_SUPPORTED: Final = (
    DERControlType.CHARGE
    | DERControlType.DISCHARGE
    | DERControlType.CONNECT
    | DERControlType.ENERGIZE
    | DERControlType.FIXED_W
    | DERControlType.MAX_LIM_W
    | DERControlType.TARGET_W
)

# ConnectStatusType bits (HexBinary8).
_CONNECTED: Final = 1 << 0
_AVAILABLE: Final = 1 << 1
_OPERATING: Final = 1 << 2
_FAULT: Final = 1 << 4

# InverterStatusType values (sep.xsd) by the SunSpec operating state the HAL reports.
_INVERTER_STATUS: Final = {
    OperatingStatus.OFF: 1,
    OperatingStatus.SLEEPING: 2,
    OperatingStatus.STARTING: 3,
    OperatingStatus.RUNNING: 4,
    OperatingStatus.THROTTLED: 5,
    OperatingStatus.SHUTTING_DOWN: 6,
    OperatingStatus.FAULT: 7,
    OperatingStatus.STANDBY: 8,
}
# OperationalModeStatusType: 1 off, 2 operational mode.
_OPERATIONAL: Final = {OperatingStatus.OFF: 1, OperatingStatus.FAULT: 1, OperatingStatus.SHUTTING_DOWN: 1}


def der_status(sample: Telemetry, at: datetime) -> DERStatus:
    """DERStatus from one inverter reading taken at server time `at`; unknown fields are left out."""
    connect = None
    if sample.connection is not None:
        bits = 0
        if sample.connection is ConnectionStatus.CONNECTED:
            bits |= _CONNECTED | _AVAILABLE
        if sample.operating in (OperatingStatus.RUNNING, OperatingStatus.THROTTLED):
            bits |= _OPERATING
        if sample.operating is OperatingStatus.FAULT:
            bits |= _FAULT
        connect = ConnectStatusType(dateTime=at, value=bits)
    inverter = operational = None
    if sample.operating is not None:
        inverter = StatusValue(dateTime=at, value=_INVERTER_STATUS[sample.operating])
        operational = StatusValue(dateTime=at, value=_OPERATIONAL.get(sample.operating, 2))
    soc = None
    if sample.soc_pct is not None:
        soc = StateOfChargeStatusType(dateTime=at, value=min(10000, max(0, hundredths(sample.soc_pct))))
    return DERStatus(
        genConnectStatus=connect,
        inverterStatus=inverter,
        operationalModeStatus=operational,
        readingTime=at,
        stateOfChargeStatus=soc,
        storConnectStatus=connect,
    )


@dataclass(frozen=True, slots=True)
class Nameplate:
    """The values DERCapability and DERSettings carry, in plain W and Wh; None = unknown."""

    max_w: float | None
    max_charge_w: float | None
    max_discharge_w: float | None
    max_wh: float | None
    set_max_w: float | None
    set_max_charge_w: float | None
    set_max_discharge_w: float | None
    set_max_wh: float | None


def nameplate(ratings: Ratings, overrides: Ratings | None) -> Nameplate:
    """The inverter's own values; an override fills only what the inverter cannot report."""
    if overrides is not None:
        ratings = Ratings(
            **{
                f.name: first_known(getattr(ratings, f.name), getattr(overrides, f.name))
                for f in fields(Ratings)
            }
        )
    return Nameplate(
        max_w=ratings.max_w,
        max_charge_w=ratings.max_charge_w,
        max_discharge_w=ratings.max_discharge_w,
        max_wh=ratings.energy_capacity_wh,
        # The limits the executor scales opModFixedW by and the HAL clamps to, from the same methods.
        set_max_w=ratings.active_power_limit_w(),
        set_max_charge_w=ratings.charge_limit_w(),
        set_max_discharge_w=ratings.discharge_limit_w(),
        set_max_wh=ratings.energy_capacity_wh,
    )


#: CSIP-AUS doeModesSupported: export, import, generation and load limits, all obeyed at the battery
DOE_MODES_SUPPORTED: Final = 0x0F


def der_capability(plate: Nameplate, profile: str = "wattsmart") -> DERCapability | None:
    """DERCapability, or None when the schema's required rtgMaxW is unknown; under the csip-aus
    profile with the csipaus:doeModesSupported its servers require."""
    if plate.max_w is None:
        return None
    return DERCapability(
        doeModesSupported=DOE_MODES_SUPPORTED if profile == "csip-aus" else None,
        modesSupported=MODES_SUPPORTED,
        rtgMaxChargeRateW=_watts(plate.max_charge_w),
        rtgMaxDischargeRateW=_watts(plate.max_discharge_w),
        rtgMaxW=ActivePower.from_watts(plate.max_w),
        rtgMaxWh=_watt_hours(plate.max_wh),
        type=DERType.OTHER_STORAGE,
    )


def der_settings(
    plate: Nameplate, updated: datetime, set_grad_w: int, profile: str = "wattsmart"
) -> DERSettings | None:
    """DERSettings, or None when the schema's required setMaxW is unknown; under the csip-aus profile
    with csipaus:doeModesEnabled (every limit we support is in use)."""
    if plate.set_max_w is None:
        return None
    return DERSettings(
        doeModesEnabled=DOE_MODES_SUPPORTED if profile == "csip-aus" else None,
        modesEnabled=MODES_SUPPORTED,
        setGradW=set_grad_w,
        setMaxChargeRateW=_watts(plate.set_max_charge_w),
        setMaxDischargeRateW=_watts(plate.set_max_discharge_w),
        setMaxW=ActivePower.from_watts(plate.set_max_w),
        setMaxWh=_watt_hours(plate.set_max_wh),
        updatedTime=updated,
    )


def missing_fields(plate: Nameplate) -> list[str]:
    """Names of the values the utility requires that are still unknown."""
    return [f.name for f in fields(Nameplate) if getattr(plate, f.name) is None]


def _watts(value: float | None) -> ActivePower | None:
    return None if value is None else ActivePower.from_watts(value)


def _watt_hours(value: float | None) -> WattHour | None:
    return None if value is None else WattHour.from_real(value)
