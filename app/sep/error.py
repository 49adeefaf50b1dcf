"""The 2030.5 Error resource a server returns with a 4xx/5xx (sep.xsd Error)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from app.sep.types import UInt16


class ReasonCode(IntEnum):
    """Error.reasonCode values (2030.5-2018 sep.xsd Error annotation)."""

    INVALID_REQUEST_FORMAT = 0
    INVALID_REQUEST_VALUES = 1
    RESOURCE_LIMIT_REACHED = 2
    CONDITIONAL_SUBSCRIPTION_FIELD_NOT_SUPPORTED = 3
    MAXIMUM_REQUEST_FREQUENCY_EXCEEDED = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """Why the server refused a request, and how many seconds to wait before retrying."""

    maxRetryDuration: UInt16 | None = None
    reasonCode: UInt16
    message: str | None = None
    """Text some servers add (envoy does); not in sep.xsd, so only ever read, never sent by us."""
