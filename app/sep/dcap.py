"""DeviceCapability: the discovery root (2030.5-2018 §6.5.4, sep.xsd DeviceCapability)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from app.sep.types import ATTR, Link, ListLink, Resource, UInt32


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSetAssignmentsBase(Resource):
    """Links to the function sets a server offers (shared by DeviceCapability and FSA)."""

    CustomerAccountListLink: ListLink | None = None
    DemandResponseProgramListLink: ListLink | None = None
    DERProgramListLink: ListLink | None = None
    FileListLink: ListLink | None = None
    MessagingProgramListLink: ListLink | None = None
    PrepaymentListLink: ListLink | None = None
    ResponseSetListLink: ListLink | None = None
    TariffProfileListLink: ListLink | None = None
    TimeLink: Link | None = None
    UsagePointListLink: ListLink | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCapability(FunctionSetAssignmentsBase):
    """The server's entry point: where the EndDevice, MirrorUsagePoint and Time resources live."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    EndDeviceListLink: ListLink | None = None
    MirrorUsagePointListLink: ListLink | None = None
    SelfDeviceLink: Link | None = None
