"""What the telemetry needs from the 2030.5 session, and where to send it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class Uplink(Protocol):
    """The session's typed requests (`app.client.http.HttpClient` has this shape)."""

    async def get(self, href: str, cls: type[T], params: Mapping[str, str | int] | None = None) -> T:
        """GET `href` and parse it as `cls`."""
        ...

    async def post(self, href: str, obj: object) -> str | None:
        """POST a model; return the Location header, if any."""
        ...

    async def put(self, href: str, obj: object) -> None:
        """PUT a model."""
        ...


@dataclass(frozen=True, slots=True)
class TelemetryLinks:
    """The hrefs discovery found for our device; a None DER link means that report is not sent."""

    mirror_usage_points: str
    der_capability: str | None = None
    der_settings: str | None = None
    der_status: str | None = None
