"""The lab server's scriptable 2030.5 resource tree: state, rendering to models, and the test API.

Pure (no I/O): the HTTP layer in wattsmart_lab.server asks it for the model at a path and hands it
PUT/POST bodies. Canonical paths:

    /dcap  /tm  /edev  /edev/{i}  /edev/{i}/reg  /edev/{i}/fsa  /edev/{i}/fsa/{k}
    /edev/{i}/der  /edev/{i}/der/0  /edev/{i}/der/0/{dercap,derg,ders,dera}
    /fsa/{k}/derp  /derp/{p}  /derp/{p}/derc  /derp/{p}/derc/{mRID}  /derp/{p}/dderc  /derp/{p}/actderc
    /mup  /mup/{n}  /rsps/0/rsp

`rename(old, new)` moves a subtree (links follow, the old path 404s); `remove(path)` makes a path
404 while links to it stay (a broken server).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from app.client.identity import sfdi_from_lfdi
from app.sep import SepParseError, parse
from app.sep.dcap import DeviceCapability
from app.sep.der import (
    DER,
    DefaultDERControl,
    DERAvailability,
    DERCapability,
    DERControl,
    DERControlBase,
    DERControlList,
    DERList,
    DERProgram,
    DERProgramList,
    DERSettings,
    DERStatus,
)
from app.sep.edev import EndDevice, EndDeviceList, Registration
from app.sep.event import CurrentStatus, EventStatus
from app.sep.fsa import FunctionSetAssignments, FunctionSetAssignmentsList
from app.sep.metering_mirror import (
    MirrorMeterReading,
    MirrorMeterReadingList,
    MirrorReadingSet,
    MirrorUsagePoint,
    MirrorUsagePointList,
)
from app.sep.response import DERControlResponse
from app.sep.tm import Time
from app.sep.types import ActivePower, DateTimeInterval, Link, ListLink, Resource

#: IANA Private Enterprise Number placed in the low 32 bits of every mRID (mRIDType annotation);
#: a made-up value for the lab
LAB_PEN: Final = 0x0000_5A5A
#: the most items one page may hold, whatever `l` asks (envoy uses 500 too)
MAX_PAGE: Final = 500
RESPONSE_LIST: Final = "/rsps/0/rsp"

_T = TypeVar("_T")

_DER_PARTS: Final[dict[str, type[Resource]]] = {
    "dercap": DERCapability,
    "derg": DERSettings,
    "ders": DERStatus,
    "dera": DERAvailability,
}


def mrid(n: int) -> str:
    """A 128-bit mRID: a serial in the high 96 bits, the lab's PEN in the low 32 (uppercase hex)."""
    return f"{n:024X}{LAB_PEN:08X}"


@dataclass(slots=True)
class PollRates:
    """pollRate attributes the server sends, in seconds; None leaves the attribute out (inherit)."""

    dcap: int | None = 300
    tm: int | None = 900
    edev: int | None = 300
    fsa: int | None = 300
    derp: int | None = 60
    der: int | None = 300
    mup: int | None = 300


@dataclass(slots=True)
class Device:
    """A registered EndDevice."""

    index: int
    lfdi: str
    sfdi: int
    pin: int
    registered: datetime


@dataclass(slots=True)
class Program:
    """A DERProgram and its controls."""

    index: int
    fsa: int
    primacy: int
    mrid: str
    description: str
    controls: dict[str, ControlState] = field(default_factory=dict)
    default: DefaultDERControl | None = None


@dataclass(slots=True)
class ControlState:
    """A DERControl as the server holds it; status is derived from these flags and the time."""

    control: DERControl
    cancelled: bool = False
    randomized_cancel: bool = False
    superseded: bool = False
    changed: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What a write did: HTTP status and, for a created resource, its path."""

    status: int
    location: str | None = None


class LabTree:
    """The resources of one lab server and the knobs tests turn."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        decoys: int = 3,
        fsas: int = 2,
        page_limit_default: int = 1,
    ) -> None:
        self._clock = clock
        self._serial = itertools.count(1)
        self.poll_rates = PollRates()
        #: EndDevice.postRate and the postRate written into every MirrorUsagePoint (None: keep the client's)
        self.post_rate: int | None = 60
        #: server time minus the lab host's clock
        self.time_offset = timedelta(0)
        #: items per page when a GET has no `l` (1 like envoy: the trap a client must not fall into)
        self.page_limit_default = page_limit_default
        #: the most items one page holds whatever `l` asks (small values force clients to page)
        self.max_page = MAX_PAGE
        self.fsa_count = fsas
        #: False leaves EndDevice.lFDI out (it is optional in sep.xsd): clients must match on sFDI
        self.show_lfdi = True
        #: False leaves DeviceCapability's MirrorUsagePointListLink out (a server with no mirrors yet)
        self.offer_mirrors = True
        self.devices: list[Device] = []
        self.programs: list[Program] = []
        self.stored: dict[str, object] = {}
        self.mups: dict[int, MirrorUsagePoint] = {}
        self.mup_owner: dict[int, str] = {}
        self.readings: list[tuple[int, object]] = []
        self.responses: list[DERControlResponse] = []
        self._renames: list[tuple[str, str]] = []
        self._removed: set[str] = set()
        for n in range(decoys):
            self.register(_decoy_lfdi(n))

    # --- time ------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The server's clock: the lab host's clock plus `time_offset`."""
        return self._clock() + self.time_offset

    # --- scripting: devices and programs -------------------------------------------------------

    def register(self, lfdi: str, sfdi: int | None = None, pin: int = 111115) -> str:
        """Add an EndDevice for `lfdi` (out-of-band registration); returns its href."""
        lfdi = lfdi.lower()
        for device in self.devices:
            if device.lfdi == lfdi:
                return self.href(f"/edev/{device.index}")
        index = max((d.index for d in self.devices), default=-1) + 1
        self.devices.append(Device(index, lfdi, sfdi or sfdi_from_lfdi(lfdi), pin, self.now()))
        return self.href(f"/edev/{index}")

    def unregister(self, lfdi: str) -> None:
        """Remove the EndDevice for `lfdi`."""
        self.devices = [d for d in self.devices if d.lfdi != lfdi.lower()]

    def add_program(self, primacy: int, description: str = "", fsa: int = 0) -> int:
        """Add a DERProgram to FSA `fsa`; returns its index (as used in /derp/{index})."""
        index = len(self.programs)
        self.programs.append(
            Program(index, fsa, primacy, mrid(next(self._serial)), description or f"program {index}")
        )
        return index

    def add_control(
        self,
        program: int,
        *,
        start: datetime,
        duration: int,
        fixed_w: int | None = None,
        target_w: float | None = None,
        base: DERControlBase | None = None,
        mrid_: str | None = None,
        response_required: int = 0x03,
        randomize_start: int | None = None,
        randomize_duration: int | None = None,
        creation_time: datetime | None = None,
    ) -> DERControl:
        """Schedule a DERControl in `program`; opModFixedW in hundredths of a percent, opModTargetW in W."""
        if base is None:
            base = DERControlBase(
                opModFixedW=fixed_w,
                opModTargetW=ActivePower.from_watts(target_w) if target_w is not None else None,
            )
        prog = self.programs[program]
        ident = mrid_ or mrid(next(self._serial))
        now = self.now()
        control = DERControl(
            href=f"/derp/{program}/derc/{ident}",
            replyTo=RESPONSE_LIST,
            responseRequired=response_required,
            mRID=ident,
            description=f"lab control {ident[-12:]}",
            creationTime=creation_time or now,
            EventStatus=EventStatus(currentStatus=0, dateTime=now, potentiallySuperseded=False),
            interval=DateTimeInterval(start=start, duration=duration),
            randomizeStart=randomize_start,
            randomizeDuration=randomize_duration,
            DERControlBase=base,
        )
        prog.controls[ident] = ControlState(control, changed=now)
        return self._render_control(prog.controls[ident])

    def cancel_control(self, mrid_: str, *, randomized: bool = False) -> None:
        """Mark a control cancelled (currentStatus 2, or 3 with randomization); servers cancel, not delete."""
        state = self._control(mrid_)
        state.cancelled, state.randomized_cancel, state.changed = True, randomized, self.now()

    def supersede_control(self, mrid_: str) -> None:
        """Mark a control superseded (currentStatus 4)."""
        state = self._control(mrid_)
        state.superseded, state.changed = True, self.now()

    def delete_control(self, mrid_: str) -> None:
        """Drop a control from its list altogether."""
        for prog in self.programs:
            prog.controls.pop(mrid_, None)

    def set_default_control(self, program: int, default: DefaultDERControl | None) -> None:
        """Set (or with None, remove) the program's DefaultDERControl."""
        prog = self.programs[program]
        if default is not None:
            default = replace(default, href=f"/derp/{program}/dderc")
        prog.default = default

    def _control(self, mrid_: str) -> ControlState:
        for prog in self.programs:
            if mrid_ in prog.controls:
                return prog.controls[mrid_]
        raise KeyError(f"no control with mRID {mrid_}")

    # --- scripting: hrefs ----------------------------------------------------------------------

    def rename(self, old: str, new: str) -> None:
        """Serve the subtree at `old` under `new` from now on; links follow, `old` answers 404."""
        self._renames.append((old.rstrip("/"), new.rstrip("/")))

    def remove(self, path: str) -> None:
        """Answer 404 at `path` (and below it) while every link to it stays: a broken server."""
        self._removed.add(path.rstrip("/"))

    def restore(self, path: str) -> None:
        """Undo `remove(path)`."""
        self._removed.discard(path.rstrip("/"))

    def href(self, canonical: str) -> str:
        """The public href of a canonical path, after renames."""
        for old, new in self._renames:
            if canonical == old or canonical.startswith(old + "/"):
                canonical = new + canonical[len(old) :]
        return canonical

    def canonical(self, public: str) -> str | None:
        """The canonical path behind a requested path; None when it is gone (renamed or removed)."""
        path = public.rstrip("/") or "/"
        for old, new in reversed(self._renames):
            if path == new or path.startswith(new + "/"):
                path = old + path[len(new) :]
            elif path == old or path.startswith(old + "/"):
                return None
        for gone in self._removed:
            if path == gone or path.startswith(gone + "/"):
                return None
        return path

    # --- reads ------------------------------------------------------------------------------------

    def get(self, path: str, query: dict[str, str], lfdi: str | None) -> object | None:
        """The resource at canonical `path` as a model, or None (404)."""
        parts = path.strip("/").split("/")
        for pattern, handler in self._routes():
            m = pattern.fullmatch("/".join(parts))
            if m:
                return handler(m, query, lfdi)
        return None

    def _routes(self) -> Iterable[tuple[re.Pattern[str], Callable[..., object | None]]]:
        return (
            (_P["dcap"], lambda m, q, c: self._dcap()),
            (_P["tm"], lambda m, q, c: self._time()),
            (_P["edevs"], lambda m, q, c: self._edev_list(q)),
            (_P["edev"], lambda m, q, c: self._edev(self._device(m[1]))),
            (_P["reg"], lambda m, q, c: self._registration(self._device(m[1]))),
            (_P["fsas"], lambda m, q, c: self._fsa_list(self._device(m[1]), q)),
            (_P["fsa"], lambda m, q, c: self._fsa_item(self._device(m[1]), int(m[2]))),
            (_P["ders"], lambda m, q, c: self._der_list(self._device(m[1]), q)),
            (_P["der"], lambda m, q, c: self._der(self._device(m[1]))),
            (_P["derpart"], lambda m, q, c: self.stored.get(f"/edev/{m[1]}/der/0/{m[2]}")),
            (_P["derps"], lambda m, q, c: self._program_list(int(m[1]), q)),
            (_P["derp"], lambda m, q, c: self._program(self._prog(m[1]))),
            (_P["dercs"], lambda m, q, c: self._control_list(self._prog(m[1]), q, active=False)),
            (_P["derc"], lambda m, q, c: self._control_item(self._prog(m[1]), m[2])),
            (_P["dderc"], lambda m, q, c: p.default if (p := self._prog(m[1])) else None),
            (_P["actderc"], lambda m, q, c: self._control_list(self._prog(m[1]), q, active=True)),
            (_P["mups"], lambda m, q, c: self._mup_list(q, c)),
            (_P["mup"], lambda m, q, c: self.mups.get(int(m[1]))),
        )

    def _device(self, index: str) -> Device | None:
        return next((d for d in self.devices if d.index == int(index)), None)

    def _prog(self, index: str) -> Program | None:
        i = int(index)
        return self.programs[i] if i < len(self.programs) else None

    def _dcap(self) -> DeviceCapability:
        return DeviceCapability(
            href=self.href("/dcap"),
            pollRate=self.poll_rates.dcap,
            TimeLink=Link(href=self.href("/tm")),
            EndDeviceListLink=ListLink(href=self.href("/edev"), all=len(self.devices)),
            MirrorUsagePointListLink=ListLink(href=self.href("/mup"), all=len(self.mups))
            if self.offer_mirrors
            else None,
        )

    def _time(self) -> Time:
        now = self.now()
        year = datetime(now.year, 1, 1, tzinfo=UTC)
        return Time(
            href=self.href("/tm"),
            pollRate=self.poll_rates.tm,
            currentTime=now,
            dstEndTime=year,
            dstOffset=0,
            dstStartTime=year,
            localTime=now,
            quality=4,
            tzOffset=0,
        )

    def _edev_list(self, query: dict[str, str]) -> EndDeviceList:
        page, total = self._page([self._edev(d) for d in self.devices], query)
        return EndDeviceList(
            href=self.href("/edev"),
            all=total,
            results=len(page),
            pollRate=self.poll_rates.edev,
            EndDevice=tuple(e for e in page if e is not None),
        )

    def _edev(self, device: Device | None) -> EndDevice | None:
        if device is None:
            return None
        base = f"/edev/{device.index}"
        return EndDevice(
            href=self.href(base),
            DERListLink=ListLink(href=self.href(f"{base}/der"), all=1),
            lFDI=device.lfdi if self.show_lfdi else None,
            sFDI=device.sfdi,
            changedTime=device.registered,
            enabled=True,
            FunctionSetAssignmentsListLink=ListLink(href=self.href(f"{base}/fsa"), all=self.fsa_count),
            postRate=self.post_rate,
            RegistrationLink=Link(href=self.href(f"{base}/reg")),
        )

    def _registration(self, device: Device | None) -> Registration | None:
        if device is None:
            return None
        return Registration(
            href=self.href(f"/edev/{device.index}/reg"),
            dateTimeRegistered=device.registered,
            pIN=device.pin,
        )

    def _fsa_item(self, device: Device | None, k: int) -> FunctionSetAssignments | None:
        if device is None or k >= self.fsa_count:
            return None
        count = sum(1 for p in self.programs if p.fsa == k)
        return FunctionSetAssignments(
            href=self.href(f"/edev/{device.index}/fsa/{k}"),
            DERProgramListLink=ListLink(href=self.href(f"/fsa/{k}/derp"), all=count),
            TimeLink=Link(href=self.href("/tm")),
            mRID=mrid(0x1000 + k),
            description=f"lab FSA {k}",
        )

    def _fsa_list(self, device: Device | None, query: dict[str, str]) -> FunctionSetAssignmentsList | None:
        if device is None:
            return None
        items = [self._fsa_item(device, k) for k in range(self.fsa_count)]
        page, total = self._page(items, query)
        return FunctionSetAssignmentsList(
            href=self.href(f"/edev/{device.index}/fsa"),
            all=total,
            results=len(page),
            pollRate=self.poll_rates.fsa,
            FunctionSetAssignments=tuple(f for f in page if f is not None),
        )

    def _der(self, device: Device | None) -> DER | None:
        if device is None:
            return None
        base = f"/edev/{device.index}/der/0"
        return DER(
            href=self.href(base),
            DERAvailabilityLink=Link(href=self.href(f"{base}/dera")),
            DERCapabilityLink=Link(href=self.href(f"{base}/dercap")),
            DERSettingsLink=Link(href=self.href(f"{base}/derg")),
            DERStatusLink=Link(href=self.href(f"{base}/ders")),
        )

    def _der_list(self, device: Device | None, query: dict[str, str]) -> DERList | None:
        if device is None:
            return None
        page, total = self._page([self._der(device)], query)
        return DERList(
            href=self.href(f"/edev/{device.index}/der"),
            all=total,
            results=len(page),
            pollRate=self.poll_rates.der,
            DER=tuple(d for d in page if d is not None),
        )

    def _program(self, prog: Program | None) -> DERProgram | None:
        if prog is None:
            return None
        base = f"/derp/{prog.index}"
        active = sum(1 for c in prog.controls.values() if self._active(c))
        return DERProgram(
            href=self.href(base),
            mRID=prog.mrid,
            description=prog.description,
            ActiveDERControlListLink=ListLink(href=self.href(f"{base}/actderc"), all=active),
            DefaultDERControlLink=Link(href=self.href(f"{base}/dderc")) if prog.default else None,
            DERControlListLink=ListLink(href=self.href(f"{base}/derc"), all=len(prog.controls)),
            primacy=prog.primacy,
        )

    def _program_list(self, fsa: int, query: dict[str, str]) -> DERProgramList | None:
        if fsa >= self.fsa_count:
            return None
        # §10.10: DERProgramList is ordered by primacy, then mRID
        progs = sorted((p for p in self.programs if p.fsa == fsa), key=lambda p: (p.primacy, p.mrid))
        page, total = self._page([self._program(p) for p in progs], query)
        return DERProgramList(
            href=self.href(f"/fsa/{fsa}/derp"),
            all=total,
            results=len(page),
            pollRate=self.poll_rates.derp,
            DERProgram=tuple(p for p in page if p is not None),
        )

    def _active(self, state: ControlState) -> bool:
        if state.cancelled or state.superseded:
            return False
        interval = state.control.interval
        return interval.start <= self.now() < interval.end

    def _render_control(self, state: ControlState) -> DERControl:
        now = self.now()
        if state.cancelled:
            status = (
                CurrentStatus.CANCELLED_WITH_RANDOMIZATION
                if state.randomized_cancel
                else CurrentStatus.CANCELLED
            )
        elif state.superseded:
            status = CurrentStatus.SUPERSEDED
        elif state.control.interval.start <= now:
            status = CurrentStatus.ACTIVE
        else:
            status = CurrentStatus.SCHEDULED
        changed = state.changed or state.control.creationTime
        return replace(
            state.control,
            href=self.href(state.control.href or ""),
            replyTo=self.href(RESPONSE_LIST),
            EventStatus=EventStatus(currentStatus=int(status), dateTime=changed, potentiallySuperseded=False),
        )

    def _control_item(self, prog: Program | None, ident: str) -> DERControl | None:
        if prog is None or ident not in prog.controls:
            return None
        return self._render_control(prog.controls[ident])

    def _control_list(
        self, prog: Program | None, query: dict[str, str], *, active: bool
    ) -> DERControlList | None:
        if prog is None:
            return None
        states = [s for s in prog.controls.values() if not active or self._active(s)]
        # sep.xsd DERControlList ordering: interval.start ascending, then creationTime descending
        states.sort(key=lambda s: (s.control.interval.start, -s.control.creationTime.timestamp()))
        page, total = self._page([self._render_control(s) for s in states], query)
        suffix = "actderc" if active else "derc"
        return DERControlList(
            href=self.href(f"/derp/{prog.index}/{suffix}"),
            all=total,
            results=len(page),
            DERControl=tuple(page),
        )

    def _mup_list(self, query: dict[str, str], lfdi: str | None) -> MirrorUsagePointList:
        items = [m for n, m in sorted(self.mups.items()) if lfdi is None or self.mup_owner.get(n) == lfdi]
        page, total = self._page(items, query)
        return MirrorUsagePointList(
            href=self.href("/mup"),
            all=total,
            results=len(page),
            pollRate=self.poll_rates.mup,
            MirrorUsagePoint=tuple(page),
        )

    def _page(self, items: list[_T], query: dict[str, str]) -> tuple[list[_T], int]:
        start = _int(query.get("s"), 0)
        limit = min(_int(query.get("l"), self.page_limit_default), self.max_page)
        return items[start : start + limit], len(items)

    # --- writes -----------------------------------------------------------------------------------

    def put(self, path: str, body: bytes) -> Reply:
        """PUT a DERCapability/DERSettings/DERStatus/DERAvailability: stored as sent (204)."""
        m = _P["derpart"].fullmatch(path.strip("/"))
        if m is None or self._device(m[1]) is None:
            return Reply(405 if self.get(path, {}, None) is not None else 404)
        cls = _DER_PARTS[m[2]]
        try:
            obj = parse(cls, body)
        except SepParseError:
            return Reply(400)
        self.stored[path] = replace(obj, href=self.href(path))
        return Reply(204)

    def post(self, path: str, body: bytes, lfdi: str | None) -> Reply:
        """POST a MirrorUsagePoint, mirror readings, or a DERControlResponse."""
        path = path.rstrip("/")
        if path == "/mup":
            return self._post_mup(body, lfdi)
        m = _P["mup"].fullmatch(path.strip("/"))
        if m is not None:
            return self._post_readings(int(m[1]), body)
        if path == RESPONSE_LIST:
            try:
                response = parse(DERControlResponse, body)
            except SepParseError:
                return Reply(400)
            self.responses.append(response)
            return Reply(201, self.href(f"{RESPONSE_LIST}/{len(self.responses) - 1}"))
        return Reply(405 if self.get(path, {}, lfdi) is not None else 404)

    def _post_mup(self, body: bytes, lfdi: str | None) -> Reply:
        try:
            mup = parse(MirrorUsagePoint, body)
        except SepParseError:
            return Reply(400)
        for n, existing in self.mups.items():
            if existing.mRID.upper() == mup.mRID.upper():
                # a re-POST of a known mRID points at the existing mirror (idempotent start-up)
                return Reply(201, self.href(f"/mup/{n}"))
        n = len(self.mups)
        post_rate = self.post_rate if self.post_rate is not None else mup.postRate
        # readings posted inside the MUP are kept as readings, not as part of the stored point
        self.mups[n] = replace(mup, href=self.href(f"/mup/{n}"), postRate=post_rate)
        self.mup_owner[n] = mup.deviceLFDI.lower() if lfdi is None else lfdi
        for reading in mup.MirrorMeterReading:
            if reading.Reading is not None or reading.MirrorReadingSet:
                self.readings.append((n, reading))
        return Reply(201, self.href(f"/mup/{n}"))

    def _post_readings(self, n: int, body: bytes) -> Reply:
        if n not in self.mups:
            return Reply(404)
        classes: tuple[type[object], ...] = (MirrorMeterReading, MirrorMeterReadingList, MirrorReadingSet)
        for cls in classes:
            try:
                obj = parse(cls, body)
            except SepParseError:
                continue
            if isinstance(obj, MirrorMeterReadingList):
                self.readings.extend((n, r) for r in obj.MirrorMeterReading)
            else:
                self.readings.append((n, obj))
            return Reply(204)
        return Reply(400)


_P: Final = {
    name: re.compile(pattern)
    for name, pattern in {
        "dcap": r"dcap",
        "tm": r"tm",
        "edevs": r"edev",
        "edev": r"edev/(\d+)",
        "reg": r"edev/(\d+)/reg",
        "fsas": r"edev/(\d+)/fsa",
        "fsa": r"edev/(\d+)/fsa/(\d+)",
        "ders": r"edev/(\d+)/der",
        "der": r"edev/(\d+)/der/0",
        "derpart": r"edev/(\d+)/der/0/(dercap|derg|ders|dera)",
        "derps": r"fsa/(\d+)/derp",
        "derp": r"derp/(\d+)",
        "dercs": r"derp/(\d+)/derc",
        "derc": r"derp/(\d+)/derc/([0-9A-Fa-f]+)",
        "dderc": r"derp/(\d+)/dderc",
        "actderc": r"derp/(\d+)/actderc",
        "mups": r"mup",
        "mup": r"mup/(\d+)",
    }.items()
}


def _int(text: str | None, default: int) -> int:
    if text is None or not text.isdigit():
        return default
    return int(text)


def _decoy_lfdi(n: int) -> str:
    return hashlib.sha256(f"lab decoy {n}".encode()).hexdigest()[:40]
