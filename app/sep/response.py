"""Responses to events (2030.5-2018 §6.13 Table 27, sep.xsd Response/DERControlResponse)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from app.sep.types import HexBinary160, MRIDType, Resource, TimeType, UInt8


class ResponseStatus(IntEnum):
    """Response.status for a 2018 server (Table 27); never send 2023's 251."""

    EVENT_RECEIVED = 1
    EVENT_STARTED = 2
    EVENT_COMPLETED = 3
    OPTED_OUT = 4
    OPTED_IN = 5
    EVENT_CANCELLED = 6
    EVENT_SUPERSEDED = 7
    PARTIALLY_COMPLETED_OPT_OUT = 8
    PARTIALLY_COMPLETED_OPT_IN = 9
    COMPLETED_NO_PARTICIPATION = 10
    ACKNOWLEDGED = 11
    CANNOT_BE_DISPLAYED = 12
    ABORTED_ALTERNATE_SERVER = 13
    ABORTED_ALTERNATE_PROGRAM = 14
    REJECTED_NOT_APPLICABLE = 252
    REJECTED_INVALID = 253
    REJECTED_EXPIRED = 254


class ResponseRequired:
    """Bits of an event's responseRequired attribute (which responses the server wants)."""

    RECEIVED = 0x01  # send EVENT_RECEIVED
    SPECIFIC = 0x02  # send started/completed/cancelled/superseded/rejected
    USER = 0x04  # send end-user responses (opt in/out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Resource):
    """A device's answer to an event: who (LFDI), about what (the event's mRID), and how."""

    createdDateTime: TimeType | None = None
    endDeviceLFDI: HexBinary160
    status: UInt8 | None = None
    subject: MRIDType


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControlResponse(Response):
    """The Response posted to a DERControl's replyTo."""
