"""EndDevice and Registration (2030.5-2018 §6.11 / §6.12, sep.xsd EndDevice, Registration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from app.sep.types import (
    ATTR,
    HexBinary32,
    HexBinary160,
    Link,
    ListLink,
    Resource,
    SubscribableList,
    SubscribableResource,
    TimeType,
    UInt32,
    UInt40,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AbstractDevice(SubscribableResource):
    """What every device has: links to its sub-resources and its identity (sFDI required)."""

    ConfigurationLink: Link | None = None
    DERListLink: ListLink | None = None
    deviceCategory: HexBinary32 | None = None
    DeviceInformationLink: Link | None = None
    DeviceStatusLink: Link | None = None
    FileStatusLink: Link | None = None
    IPInterfaceListLink: ListLink | None = None
    lFDI: HexBinary160 | None = None
    LoadShedAvailabilityListLink: ListLink | None = None
    LogEventListLink: ListLink | None = None
    PowerStatusLink: Link | None = None
    sFDI: UInt40


@dataclass(frozen=True, slots=True, kw_only=True)
class EndDevice(AbstractDevice):
    """One registered device; the gateway finds itself by LFDI/SFDI in the EndDeviceList."""

    changedTime: TimeType
    enabled: bool | None = None
    FlowReservationRequestListLink: ListLink | None = None
    FlowReservationResponseListLink: ListLink | None = None
    FunctionSetAssignmentsListLink: ListLink | None = None
    postRate: UInt32 | None = None
    RegistrationLink: Link | None = None
    SubscriptionListLink: ListLink | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndDeviceList(SubscribableList):
    """A page of EndDevices."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    EndDevice: tuple[EndDevice, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration(Resource):
    """Out-of-band registration record: when, and the PIN the installer can check."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    dateTimeRegistered: TimeType
    pIN: UInt32
