"""The typed, immutable picture of the server's tree that the client hands to the rest of the gateway."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.client.identity import DeviceIdentity
from app.sep.dcap import DeviceCapability
from app.sep.der import DER, DefaultDERControl, DERControl, DERProgram
from app.sep.edev import EndDevice
from app.sep.fsa import FunctionSetAssignments
from app.sep.metering_mirror import MirrorUsagePoint
from app.sep.tm import Time


@dataclass(frozen=True, slots=True)
class ProgramBranch:
    """One DERProgram with its controls (every page), default control and active controls."""

    program: DERProgram
    controls: tuple[DERControl, ...] = ()
    default_control: DefaultDERControl | None = None
    active_controls: tuple[DERControl, ...] = ()
    #: effective pollRate of this branch, seconds
    poll_rate_s: int = 900
    #: the DERControlList was read to its end (every page, `all` items): an event missing from it
    #: is no longer on the server. False when it was cut short, unreadable or not linked.
    controls_complete: bool = False

    @property
    def primacy(self) -> int:
        """Lower wins (§12.1.3.1)."""
        return self.program.primacy


@dataclass(frozen=True, slots=True)
class ServerTree:
    """What the server says, as of `read_at` (server time). Equal trees mean nothing changed."""

    identity: DeviceIdentity
    device_capability: DeviceCapability
    #: our EndDevice, found by LFDI/SFDI; None until the utility registers us
    end_device: EndDevice | None = None
    function_set_assignments: tuple[FunctionSetAssignments, ...] = ()
    #: every DERProgram of every FSA, ordered by primacy (highest priority first)
    programs: tuple[ProgramBranch, ...] = ()
    ders: tuple[DER, ...] = ()
    mirror_usage_point_list_href: str | None = None
    #: our MirrorUsagePoints already on the server
    mirror_usage_points: tuple[MirrorUsagePoint, ...] = ()
    #: the last Time read (changes every read, so it does not make trees unequal)
    time: Time | None = field(default=None, compare=False)
    read_at: datetime | None = field(default=None, compare=False)

    @property
    def registered(self) -> bool:
        """True once our EndDevice is on the server."""
        return self.end_device is not None

    @property
    def der(self) -> DER | None:
        """Our (first) DER: where DERCapability/DERSettings/DERStatus/DERAvailability are PUT."""
        return self.ders[0] if self.ders else None

    @property
    def post_rate_s(self) -> int | None:
        """EndDevice.postRate: how often the server wants our posts, if it said."""
        return self.end_device.postRate if self.end_device is not None else None
