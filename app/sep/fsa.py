"""FunctionSetAssignments (2030.5-2018 §6.6, sep.xsd FunctionSetAssignments[List])."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from app.sep.dcap import FunctionSetAssignmentsBase
from app.sep.types import ATTR, MRIDType, SubscribableList, UInt8, UInt32, VersionType


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSetAssignments(FunctionSetAssignmentsBase):
    """One assignment of function sets (DER programs, time…) to this device; identified by mRID."""

    subscribable: Annotated[UInt8, ATTR] = 0
    # sep.xsd puts the IdentifiedObject elements after the inherited links.
    mRID: MRIDType
    description: str | None = None
    version: VersionType | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSetAssignmentsList(SubscribableList):
    """A page of FunctionSetAssignments."""

    pollRate: Annotated[UInt32, ATTR] | None = None
    FunctionSetAssignments: tuple[FunctionSetAssignments, ...] = ()
