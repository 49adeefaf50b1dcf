"""Discovery: walk DeviceCapability down to our EndDevice, its programs and DERs, at pollRate.

One walk serves both first discovery and every later poll: a resource is fetched only when it
is new (a link appeared or its href changed) or its effective pollRate has passed; otherwise
the copy from its last read is used. A 404/410 makes the parent that linked to it due at once
and the walk restarts, which re-discovers the branch; a link that still 404s right after a fresh
read of its parent is taken as absent and tried again at its pollRate, never in a tight loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from app.client import errors
from app.client.clock import ServerClock
from app.client.http import HttpClient
from app.client.identity import DeviceIdentity
from app.client.notices import Notices, note_rate
from app.client.poll_schedule import PollSchedule, effective_rate
from app.client.snapshot import ProgramBranch, ServerTree
from app.sep.dcap import DeviceCapability
from app.sep.der import DER, DefaultDERControl, DERControlList, DERList, DERProgram, DERProgramList
from app.sep.edev import EndDevice, EndDeviceList
from app.sep.fsa import FunctionSetAssignments, FunctionSetAssignmentsList
from app.sep.metering_mirror import MirrorUsagePointList
from app.sep.tm import Time

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

#: items asked for per page; always sent, because a server may default `l` to 1 (envoy does)
PAGE_SIZE = 50
#: a list longer than this is a server bug, not something to page through forever
MAX_ITEMS = 5000
#: ... and so is one that takes more pages than this (a server that ignores `l` and sends 1 a page)
MAX_PAGES = 100
#: restarts of one walk after 404s before giving up until the next poll
_MAX_RESTARTS = 4


class _Restart(Exception):
    """A link went stale (404); its parent is now due, so walk again."""


@dataclass(slots=True)
class _Entry:
    value: Any
    generation: int


class Discovery:
    """Walks the server tree through `http`, re-reading each resource at its effective pollRate."""

    def __init__(
        self,
        http: HttpClient,
        dcap_href: str,
        identity: DeviceIdentity,
        server_clock: ServerClock,
        *,
        monotonic: Callable[[], float],
        rng: random.Random,
        default_poll_rate_s: int = 900,
        min_rate_s: int = 10,
        max_rate_s: int = 86400,
        notices: Notices | None = None,
    ) -> None:
        self._http = http
        self._dcap_href = dcap_href
        self._identity = identity
        self._server_clock = server_clock
        self._monotonic = monotonic
        self._default_rate = default_poll_rate_s
        self._min_rate = min_rate_s
        self._max_rate = max_rate_s
        self.notices = notices if notices is not None else Notices()
        self.schedule = PollSchedule(rng)
        self._cache: dict[str, _Entry] = {}
        self._generation = 0
        self._seen: set[str] = set()
        #: hrefs currently broken (404 while linked, or a bad body): logged once, not every poll
        self._broken: set[str] = set()
        self._registered: bool | None = None

    def next_due(self) -> float | None:
        """Monotonic time at which the next resource is due."""
        return self.schedule.next_due()

    async def walk(self) -> ServerTree:
        """Read what is due (or new) and return the whole tree; raises app.client.errors on failure."""
        for _ in range(_MAX_RESTARTS):
            self._generation += 1
            self._seen = set()
            try:
                tree = await self._walk()
            except _Restart:
                continue
            # branches no longer linked from anywhere are dropped
            for href in [h for h in self._cache if h not in self._seen]:
                del self._cache[href]
                self._http.forget(href)
            self.schedule.keep_only(self._seen)
            self._broken &= self._seen
            for key in self.notices.current():  # a bounded pollRate of a resource no longer linked
                if key.startswith("pollRate ") and key.removeprefix("pollRate ") not in self._seen:
                    self.notices.clear(key)
            return tree
        raise errors.RetryLater("links keep moving under us; trying again later", href=self._dcap_href)

    # --- the walk -----------------------------------------------------------------------------

    async def _walk(self) -> ServerTree:
        dcap = await self._read(self._dcap_href, DeviceCapability, self._default_rate, parent=None)
        if dcap is None:  # pragma: no cover - the root has no parent, so a 404 raises instead
            raise errors.Rediscover("DeviceCapability is gone", href=self._dcap_href)
        dcap_rate = self._rate(self._dcap_href)
        time = await self._time(dcap)
        edev, edev_rate, edev_list_href = await self._end_device(dcap, dcap_rate)
        tree = ServerTree(
            identity=self._identity,
            device_capability=dcap,
            time=time,
            read_at=self._server_clock.now(),
        )
        mup_link = dcap.MirrorUsagePointListLink
        if mup_link is not None:
            mups = await self._read_list(mup_link.href, MirrorUsagePointList, dcap_rate, self._dcap_href)
            mine = tuple(
                m
                for m in (mups.MirrorUsagePoint if mups else ())
                if m.deviceLFDI.lower() == self._identity.lfdi
            )
            tree = dataclasses.replace(
                tree, mirror_usage_point_list_href=mup_link.href, mirror_usage_points=mine
            )
        if edev is None or edev_list_href is None:
            return tree
        fsas, programs = await self._programs(edev, edev_rate, edev_list_href)
        ders = await self._ders(edev, edev_rate, edev_list_href)
        return dataclasses.replace(
            tree, end_device=edev, function_set_assignments=fsas, programs=programs, ders=ders
        )

    async def _time(self, dcap: DeviceCapability) -> Time | None:
        if dcap.TimeLink is None:
            return None
        href = dcap.TimeLink.href
        due = href not in self._cache or self.schedule.is_due(href, self._monotonic())
        sent = self._server_clock.local_now()
        # Time without a pollRate of its own takes the default (900 s), not DeviceCapability's
        time = await self._read(href, Time, self._default_rate, parent=self._dcap_href)
        if time is not None and due:
            self._server_clock.update(time.currentTime, sent, self._server_clock.local_now())
        return time

    async def _end_device(
        self, dcap: DeviceCapability, rate: int
    ) -> tuple[EndDevice | None, int, str | None]:
        link = dcap.EndDeviceListLink
        if link is None:
            self._note_registered(False, "the server offers no EndDeviceList")
            return None, rate, None
        devices = await self._read_list(link.href, EndDeviceList, rate, self._dcap_href)
        mine = next((d for d in (devices.EndDevice if devices else ()) if self._is_us(d)), None)
        self._note_registered(mine is not None, "")
        return mine, self._rate(link.href), link.href

    def _is_us(self, device: EndDevice) -> bool:
        if device.lFDI is not None:
            return device.lFDI.lower() == self._identity.lfdi
        return device.sFDI == self._identity.sfdi

    def _note_registered(self, found: bool, why: str) -> None:
        if found == self._registered:
            return
        self._registered = found
        if found:
            _LOGGER.info("found our EndDevice (LFDI %s)", self._identity.lfdi)
        else:
            # onboarding is out-of-band: the utility needs exactly these two numbers
            _LOGGER.warning(
                "not registered on the 2030.5 server%s: ask the utility to register LFDI %s / SFDI %d",
                f" ({why})" if why else "",
                self._identity.lfdi,
                self._identity.sfdi,
            )

    async def _programs(
        self, edev: EndDevice, rate: int, parent: str
    ) -> tuple[tuple[FunctionSetAssignments, ...], tuple[ProgramBranch, ...]]:
        link = edev.FunctionSetAssignmentsListLink
        if link is None:
            return (), ()
        fsa_list = await self._read_list(link.href, FunctionSetAssignmentsList, rate, parent)
        if fsa_list is None:
            return (), ()
        fsa_rate = self._rate(link.href)
        branches: dict[str, ProgramBranch] = {}
        for fsa in fsa_list.FunctionSetAssignments:
            if fsa.DERProgramListLink is None:
                continue
            derp_href = fsa.DERProgramListLink.href
            derp = await self._read_list(derp_href, DERProgramList, fsa_rate, link.href)
            if derp is None:
                continue
            derp_rate = self._rate(derp_href)
            for program in derp.DERProgram:
                key = program.href or program.mRID
                if key not in branches:
                    branches[key] = await self._program(program, derp_rate, derp_href)
        # §12.1.3.1: lower primacy number wins; mRID makes the order total
        ordered = sorted(branches.values(), key=lambda b: (b.program.primacy, b.program.mRID))
        return fsa_list.FunctionSetAssignments, tuple(ordered)

    async def _program(self, program: DERProgram, rate: int, parent: str) -> ProgramBranch:
        controls = active = None
        default = None
        if program.DERControlListLink is not None:
            controls = await self._read_list(program.DERControlListLink.href, DERControlList, rate, parent)
        if program.ActiveDERControlListLink is not None:
            href = program.ActiveDERControlListLink.href
            active = await self._read_list(href, DERControlList, rate, parent)
        if program.DefaultDERControlLink is not None:
            default = await self._read(program.DefaultDERControlLink.href, DefaultDERControl, rate, parent)
        return ProgramBranch(
            program=program,
            controls=controls.DERControl if controls else (),
            default_control=default,
            active_controls=active.DERControl if active else (),
            poll_rate_s=rate,
            controls_complete=controls is not None and controls.results >= controls.all,
        )

    async def _ders(self, edev: EndDevice, rate: int, parent: str) -> tuple[DER, ...]:
        if edev.DERListLink is None:
            return ()
        ders = await self._read_list(edev.DERListLink.href, DERList, rate, parent)
        return ders.DER if ders else ()

    # --- reading at pollRate ----------------------------------------------------------------------

    def _rate(self, href: str) -> int:
        rate = self.schedule.rate(href)
        return int(rate) if rate is not None else self._default_rate

    async def _read(self, href: str, cls: type[T], inherited: int, parent: str | None) -> T | None:
        """The resource at `href`: cached until due, fetched when due or new; None if it is gone."""
        return await self._cached(href, inherited, parent, lambda: self._http.get(href, cls))

    async def _read_list(self, href: str, cls: type[T], inherited: int, parent: str | None) -> T | None:
        """Every page of the list at `href`, merged into one `cls` (cached like `_read`)."""
        return await self._cached(href, inherited, parent, lambda: self._all_pages(href, cls))

    async def _cached(
        self, href: str, inherited: int, parent: str | None, fetch: Callable[[], Awaitable[T]]
    ) -> T | None:
        self._seen.add(href)
        entry = self._cache.get(href)
        now = self._monotonic()
        if entry is not None and not self.schedule.is_due(href, now):
            return cast("T | None", entry.value)
        try:
            value = await fetch()
        except errors.Rediscover:
            self._http.forget(href)
            if parent is None:
                raise
            parent_entry = self._cache.get(parent)
            if parent_entry is not None and parent_entry.generation == self._generation:
                # the parent was just read and still links here: absent until its next poll
                self._note_broken(href, "is linked but answers 404; trying again at its pollRate")
                self._cache[href] = _Entry(None, self._generation)
                self.schedule.record(href, now, effective_rate(None, inherited, self._min_rate))
                return None
            # the link is stale: re-read the parent, which re-discovers this branch
            self._cache.pop(href, None)
            self.schedule.forget(href)
            self.schedule.make_due(parent)
            raise _Restart from None
        except errors.BadResponse as exc:
            if entry is None:
                raise
            # keep what we had; one bad answer must not blank a branch or stall the others
            self._note_broken(href, f"answered badly, keeping the previous copy ({exc})")
            self.schedule.record(href, now, self.schedule.rate(href) or inherited)
            return cast("T | None", entry.value)
        if href in self._broken:
            self._broken.discard(href)
            _LOGGER.info("%s reads fine again", href)
        own = note_rate(
            self.notices,
            f"pollRate {href}",
            f"{href} pollRate",
            getattr(value, "pollRate", None),
            self._min_rate,
            self._max_rate,
        )
        self._cache[href] = _Entry(value, self._generation)
        self.schedule.record(href, now, effective_rate(own, inherited, self._min_rate))
        return value

    def _note_broken(self, href: str, what: str) -> None:
        if href not in self._broken:
            self._broken.add(href)
            _LOGGER.warning("%s %s", href, what)

    async def _all_pages(self, href: str, cls: type[T]) -> T:
        items_field = _items_field(cls)
        items: list[object] = []
        first: T | None = None
        start = 0
        for pages in itertools.count(1):
            page = await self._http.get(href, cls, {"s": start, "l": PAGE_SIZE})
            first = first if first is not None else page
            got: tuple[object, ...] = getattr(page, items_field)
            items.extend(got)
            start += len(got)
            total: int = getattr(page, "all")  # noqa: B009
            # `all` is the total on the server; an empty page ends it whatever `all` claims
            if not got or start >= total:
                self.notices.clear(f"pages {href}")
                break
            if len(items) >= MAX_ITEMS or pages >= MAX_PAGES:
                self.notices.note(
                    f"pages {href}",
                    f"{href} lists {total} items; reading only the first {len(items)} ({pages} pages)",
                )
                break
        assert first is not None
        return dataclasses.replace(first, **{items_field: tuple(items), "results": len(items)})  # type: ignore[type-var]


def _items_field(cls: type) -> str:
    """The repeated item field of a 2030.5 list model (e.g. EndDeviceList.EndDevice)."""
    for f in dataclasses.fields(cls):
        if f.default == ():
            return f.name
    raise TypeError(f"{cls.__name__} is not a list resource")
