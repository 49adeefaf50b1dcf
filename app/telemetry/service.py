"""The telemetry service: one loop on the 30-s grid that samples, stores, and reports to the server."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from app.client.backoff import Backoff
from app.client.errors import Rediscover, Rejected, RetryLater, SepError
from app.client.notices import Notices
from app.client.port import ServerPort
from app.config import Config
from app.health import Health, Kind
from app.meter import ObservedMeter
from app.store import Store, StoreUnavailable, open_store
from app.telemetry.availability import AvailabilityReporter, SocLimits
from app.telemetry.der import der_status
from app.telemetry.grid import crossed, tick_at_or_after, tick_time
from app.telemetry.links import TelemetryLinks
from app.telemetry.metering_mirror import readings_post
from app.telemetry.mirrors import Mirrors
from app.telemetry.points import POINTS, QUESTIONABLE, SITE_POWER, DataPoint
from app.telemetry.reports import NameplateReporter
from app.telemetry.timebase import Timebase
from hal.errors import ConfigurationError, HalError
from hal.inverter import BatteryInverter, Ratings, Telemetry

_LOGGER = logging.getLogger(__name__)

PART: Final = "telemetry"
INVERTER_PART: Final = "telemetry.inverter"
SERVER_PART: Final = "telemetry.server"
STORAGE_PART: Final = "telemetry.storage"
METER_PART: Final = "telemetry.meter"

#: an inverter read (Modbus retries included) that takes longer is a failed read: a gap
READ_TIMEOUT_S: Final = 10.0
#: the reporting of one tick stops this long before the next tick, so sampling stays on the grid
CYCLE_MARGIN_S: Final = 3.0
#: readings per POST while catching up (one hour of 30-s readings)
MAX_READINGS_PER_POST: Final = 120
#: pause between the POSTs that deliver a backlog, so a server that just came back is not flooded
BACKLOG_PACE_S: Final = 1.0
#: how often readings past outbox_max_age_s are dropped
PRUNE_EVERY_S: Final = 3600
#: how often to try again to open an outbox that cannot be opened (an I/O error, a full disk)
OPEN_RETRY_S: Final = 30.0
#: a longer stall is not filled with gap rows (a suspended process, a clock jump)
_MAX_GAP_FILL: Final = 2880


#: state key of a DERStatus's time when its cadence last (re)started: a restart keeps the phase
STATUS_KEY: Final = "der_status_at"
#: ... and of a point's post when its cadence last (re)started or its postRate changed
POST_KEY: Final = "post_at:{}"


def next_anchor(anchor: int | None, period_s: int, tick: int) -> int:
    """The scheduled time of a periodic send done at `tick` that was due at `anchor + period_s`.

    A send late by less than one period (a retry after a failure) keeps the cadence: the next one
    is due a period after the scheduled time, not after the retry. Later than that, or the first
    send, starts the cadence afresh at `tick`.
    """
    if anchor is None:
        return tick
    scheduled = anchor + period_s
    return scheduled if 0 <= tick - scheduled < period_s else tick


def resume_anchor(saved: int, period_s: int, tick: int) -> int:
    """After a restart: the anchor that makes the next send the first one at or after `tick` that
    is a whole number of periods from `saved` (a send of the earlier run): never sooner than a
    period after that run's last send."""
    first = saved + -(-(tick - saved) // period_s) * period_s
    return first - period_s


def is_due(anchor: int | None, period_s: int, tick: int) -> bool:
    """True when a send scheduled at `anchor` is `period_s` behind `tick`, none was ever sent, or the
    server's clock went back before it."""
    return anchor is None or tick >= anchor + period_s or tick < anchor


@dataclass(slots=True)
class _PointState:
    anchor: int | None = None
    """Scheduled time (epoch s) of the last post: the next is due `period` after it."""
    period: int | None = None
    """The postRate in force at the last post: a change applies from the next post on."""
    catching_up: bool = False
    accepted_at: datetime | None = None
    """Server time the server last took a POST of this point's readings."""
    saved: int | None = None
    """A post of the earlier run (its phase), until this run's first post resumes from it."""


class TelemetryService:
    """Samples W, Hz and SoC on the grid and keeps the server's mirrors and DER reports current.

    `run()` until cancelled (the store's last user commits what is staged as it closes); `flush()`
    commits it at once.
    """

    #: tasks of this service that wait on the timebase (a simulated clock waits for all of them)
    LOOPS: Final = 1

    def __init__(
        self,
        config: Config,
        inverter: BatteryInverter,
        server: ServerPort,
        links: TelemetryLinks,
        timebase: Timebase,
        health: Health,
        lfdi: str,
        *,
        overrides: Ratings | None = None,
        set_grad_w: int | None = None,
        max_readings_per_post: int = MAX_READINGS_PER_POST,
        backlog_pace_s: float = BACKLOG_PACE_S,
        rng: random.Random | None = None,
        notices: Notices | None = None,
        meter: ObservedMeter | None = None,
    ) -> None:
        self._config = config
        #: the site meter: its net power is mirrored as one more point
        self._meter = meter
        self._all = POINTS + ((SITE_POWER,) if meter is not None else ())
        self._tc = config.telemetry
        self._inverter = inverter
        self._server = server
        self._links = links
        self._timebase = timebase
        self._health = health
        self._notices = notices if notices is not None else Notices()
        self._lfdi = lfdi
        self._max_batch = max_readings_per_post
        self._pace = backlog_pace_s
        grad = links.set_grad_w if set_grad_w is None else set_grad_w
        self._nameplate = NameplateReporter(server, links, overrides, grad, health, config.server.profile)
        soc = SocLimits(config.control.min_soc_percent, config.control.max_soc_percent)
        self._availability = AvailabilityReporter(server, links.der_availability, soc, health)
        self._backoff = Backoff(cap_s=config.server.max_backoff_s, rng=rng or random.Random(), base_s=30.0)
        self._store: Store | None = None
        self._mirrors: Mirrors | None = None
        self._points = {p.key: _PointState() for p in self._all}
        self._last_tick: int | None = None
        self._status_anchor: int | None = None
        self._last_ratings: int | None = None
        self._last_prune: int | None = None
        self._inverter_down = False
        self._retry_at = 0.0
        self._last_sample: datetime | None = None
        self._backlog: dict[str, int] = {}
        self.dropped = 0

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sample and report on the grid until cancelled; the outbox is committed and closed on exit."""
        self._store = store = await self._open_store()
        try:
            qualifiers = {"W": self._tc.power.data_qualifier, "Hz": self._tc.frequency.data_qualifier}
            server = self._config.server
            self._mirrors = Mirrors(
                self._server,
                self._lfdi,
                qualifiers,
                min_rate_s=server.min_rate_s,
                max_rate_s=server.max_rate_s,
                notices=self._notices,
            )
            self._resume_phases(store)
            backlog = {p.key: store.outbox.backlog(p.key) for p in self._all}
            if any(backlog.values()):
                _LOGGER.info("Outbox holds readings from before the restart: %s", backlog)
            while True:
                tick = self._next_tick()
                await self._timebase.sleep_until(tick_time(tick))
                if self._timebase.now() < tick_time(tick):
                    continue  # woke early (the server clock moved); wait again
                await self._cycle(tick)
                self._health.beat(PART)
        finally:
            self._backlog = store.outbox.backlogs()
            self._store = None
            store.close()

    def _resume_phases(self, store: Store) -> None:
        """The DERStatus and post phases of the earlier run (none if the store cannot say: start afresh)."""
        try:
            saved = store.state.get(STATUS_KEY)
            posts = {p.key: store.state.get(POST_KEY.format(p.key)) for p in self._all}
        except StoreUnavailable as exc:
            _LOGGER.debug("cadence phases not read: %s", exc)
            return
        if saved is not None and saved.isdigit():
            now_tick = tick_at_or_after(self._timebase.now(), self._tc.interval_s)
            self._status_anchor = resume_anchor(int(saved), self._tc.status_interval_s, now_tick)
        for key, text in posts.items():
            self._points[key].saved = int(text) if text is not None and text.isdigit() else None

    def _remember(self, key: str, value: int) -> None:
        """Stage a cadence phase with this cycle's commit; a store in trouble only costs the phase."""
        assert self._store is not None
        try:
            self._store.state.stage(key, str(value))
        except StoreUnavailable as exc:
            _LOGGER.debug("%s not remembered: %s", key, exc)

    async def _open_store(self) -> Store:
        """The store; while it cannot be opened, say so and try again (beating: this is no hang)."""
        while True:
            try:
                return open_store(self._config.state_dir)
            except StoreUnavailable as exc:
                self._health.problem(
                    STORAGE_PART, f"the outbox cannot be opened, retrying ({exc})", Kind.STORAGE
                )
                self._health.beat(PART)
                await self._timebase.sleep_until(self._timebase.now() + timedelta(seconds=OPEN_RETRY_S))

    def _next_tick(self) -> int:
        """The next grid tick: never one already taken, unless the server's clock went back."""
        interval = self._tc.interval_s
        tick = tick_at_or_after(self._timebase.now(), interval)
        if self._last_tick is None:
            return tick
        if tick < self._last_tick - interval:
            _LOGGER.warning("Server time moved back to %s; sampling from there", self._timebase.now())
            self._last_tick = None
            return tick
        return max(tick, self._last_tick + interval)

    async def flush(self) -> None:
        """Make every staged reading durable now."""
        if self._store is not None:
            self._store.outbox.commit()

    def update_links(self, links: TelemetryLinks) -> None:
        """Discovery found new hrefs (the server moved things); later requests use them."""
        if links == self._links:
            return
        _LOGGER.info("Telemetry links now %s", links)
        self._links = links
        self._nameplate.links = links
        if links.der_availability != self._availability.href:
            self._availability.href = links.der_availability
            self._availability.forget()
        self.set_grad_w(links.set_grad_w)

    def status(self) -> dict[str, object]:
        """For the status page: the last sample, the last accepted post and the backlog per point (no I/O)."""
        backlog = self._store.outbox.backlogs() if self._store is not None else self._backlog
        out: dict[str, object] = {
            "last sample": _iso(self._last_sample),
            "mirror list": self._links.mirror_usage_points or "none yet: readings wait in the outbox",
        }
        for point in self._all:
            out[f"last post {point.key}"] = _iso(self._points[point.key].accepted_at)
        for point in self._all:
            out[f"waiting {point.key}"] = backlog.get(point.key, 0)
        out["dropped"] = self.dropped
        if self._store is not None:
            out["held in memory"] = self._store.outbox.held
            out["lost (memory full)"] = self._store.outbox.lost
        return out

    def set_grad_w(self, value: int) -> None:
        """A DefaultDERControl's setGradW (hundredths of a percent per second) updates DERSettings."""
        self._nameplate.set_grad_w(value, self._timebase.now())

    # --- one tick --------------------------------------------------------------------------------

    async def _cycle(self, tick: int) -> None:
        assert self._store is not None
        outbox = self._store.outbox
        sample = await self._read()
        if sample is not None:
            self._last_sample = tick_time(tick)
        site_w = await self._read_meter()
        self._record_skipped(tick)
        outbox.stage(tick, *self._wire(sample, site_w))
        deadline = tick + self._tc.interval_s - CYCLE_MARGIN_S
        try:
            if self._timebase.now().timestamp() >= self._retry_at:
                async with asyncio.timeout(max(deadline - self._timebase.now().timestamp(), 0.1)):
                    await self._report(tick, sample, deadline)
                self._backoff.reset()
                self._health.ok(SERVER_PART)
        except TimeoutError:
            self._server_failed("the server did not answer within the 30-s cycle", None, Kind.SERVER)
        except SepError as exc:
            self._server_failed(str(exc), exc.retry_after if isinstance(exc, RetryLater) else None, exc.kind)
        except StoreUnavailable as exc:  # the readings stay in the outbox or in memory; next cycle
            _LOGGER.debug("reporting stopped by the store: %s", exc)
        finally:
            self._store.outbox.commit()  # a sample it cannot write is held in memory
        if crossed(tick, self._last_prune, PRUNE_EVERY_S):
            self._last_prune = tick
            try:
                self._prune(tick)
            except StoreUnavailable as exc:
                _LOGGER.debug("outbox not pruned: %s", exc)
        self._storage_health(self._store)

    def _storage_health(self, store: Store) -> None:
        """Tell the status page and LED whether samples are being written (cleared by the first that is)."""
        held = store.outbox.held
        if store.problem is None and not held:
            self._health.ok(STORAGE_PART)
            return
        self._health.problem(
            STORAGE_PART,
            f"{store.problem or 'the outbox cannot be written'}; "
            f"{held} sample(s) held in memory, written when it can be",
            Kind.STORAGE,
        )

    async def _read(self) -> Telemetry | None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                sample = await self._inverter.read_telemetry()
        except (HalError, TimeoutError) as exc:
            self._health.problem(
                INVERTER_PART,
                f"inverter read failed, readings recorded as missing ({exc!r})",
                Kind.CONFIGURATION if isinstance(exc, ConfigurationError) else Kind.INVERTER,
            )
            self._inverter_down = True
            return None
        if self._inverter_down:
            self._inverter_down = False
            self._last_ratings = None  # re-read the ratings after a reconnect
        self._health.ok(INVERTER_PART)
        return sample

    async def _read_meter(self) -> float | None:
        """The site's net power now (None: no meter, or it did not answer: a gap)."""
        if self._meter is None:
            return None
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                reading = await self._meter.read()
        except (HalError, TimeoutError) as exc:
            self._health.problem(
                METER_PART, f"site meter read failed, recorded as missing ({exc!r})", Kind.INVERTER
            )
            return None
        self._health.ok(METER_PART)
        return reading.export_w

    def _wire(
        self, sample: Telemetry | None, site_w: float | None = None
    ) -> tuple[dict[str, int | None], dict[str, int]]:
        """The sample's wire values per point, and the quality flags of those that failed a check."""
        values: dict[str, int | None] = {}
        quality: dict[str, int] = {}
        for point in self._all:
            if point.site:
                values[point.key] = None if site_w is None else point.to_wire(site_w)
                continue
            value = None if sample is None else point.value_of(sample)
            if value is None and sample is not None:
                value = point.questionable_of(sample)
                if value is not None:
                    quality[point.key] = QUESTIONABLE  # posted, never as clean truth
            values[point.key] = None if value is None else point.to_wire(value)
        return values, quality

    def _record_skipped(self, tick: int) -> None:
        """Ticks this run slept through (an overrun, a stalled loop) are recorded as gaps too."""
        assert self._store is not None
        last, self._last_tick = self._last_tick, tick
        if last is None:
            return
        skipped = range(last + self._tc.interval_s, tick, self._tc.interval_s)
        if skipped:
            _LOGGER.warning(
                "%d sample(s) skipped before %s; recorded as missing", len(skipped), tick_time(tick)
            )
            for missed in list(skipped)[-_MAX_GAP_FILL:]:
                self._store.outbox.stage(missed, dict.fromkeys((p.key for p in self._all), None))

    # --- reporting -------------------------------------------------------------------------------

    async def _report(self, tick: int, sample: Telemetry | None, deadline: float) -> None:
        if is_due(self._status_anchor, self._tc.status_interval_s, tick):
            await self._send_status(tick, sample)
        # Once known, ratings are read after the send: a change found now is PUT by the next cycle,
        # after the control part (woken by the guard) has written the new setpoint.
        ratings_due = crossed(tick, self._last_ratings, self._tc.ratings_interval_s)
        if ratings_due and not self._nameplate.known:
            await self._read_ratings(tick)  # at start-up the first PUT goes out at once
            ratings_due = False
        await self._nameplate.send(self._timebase.now())
        if sample is not None:
            await self._availability.send(self._nameplate.plate, sample.soc_pct, tick_time(tick))
        if ratings_due:
            await self._read_ratings(tick)
        mirrors = self._mirrors
        assert mirrors is not None
        # the poller reads the MirrorUsagePointList at its pollRate; we only look at its snapshot
        await mirrors.ensure(self._server.tree, self._all)
        for point in self._all:
            if mirrors.href(point) is not None:  # else its readings wait for a MirrorUsagePointList
                await self._deliver(point, tick, deadline)

    async def _send_status(self, tick: int, sample: Telemetry | None) -> None:
        href = self._links.der_status
        if href is None or sample is None:
            return  # without a reading there is no status to tell; the next minute will have one
        try:
            await self._server.put(href, der_status(sample, tick_time(tick)))
        except Rejected as exc:
            _LOGGER.error("Server refused DERStatus: %s", exc)
        old, period = self._status_anchor, self._tc.status_interval_s
        self._status_anchor = next_anchor(old, period, tick)
        if old is None or self._status_anchor != old + period:
            # the cadence (re)started here: remember its phase, durable with this cycle's one commit
            # (a steady cadence writes nothing: a restart finds the phase from this one value)
            self._remember(STATUS_KEY, self._status_anchor)

    async def _read_ratings(self, tick: int) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                ratings = await self._inverter.read_ratings()
        except (HalError, TimeoutError) as exc:
            _LOGGER.debug("Ratings not read (%r); trying again next cycle", exc)
            return
        self._last_ratings = tick
        self._nameplate.update(ratings, tick_time(tick))

    async def _deliver(self, point: DataPoint, tick: int, deadline: float) -> None:
        """POST what waits for `point` when its postRate says so; a backlog goes in paced batches."""
        assert self._store is not None and self._mirrors is not None
        state = self._points[point.key]
        rate = self._mirrors.post_rate(point) or self._tc.default_post_rate_s
        period = state.period or rate
        if state.anchor is None and state.saved is not None:
            state.anchor = resume_anchor(state.saved, period, tick)  # after a restart: same phase
            state.saved = None
        due = is_due(state.anchor, period, tick)
        if not (state.catching_up or due):
            return
        if due:
            # the cadence counts from when this post was due, whether or not the batches below finish;
            # the postRate in force now sets when the next one goes (every interval is one postRate)
            old, state.anchor, state.period = state.anchor, next_anchor(state.anchor, period, tick), rate
            if old is None or state.anchor != old + period or rate != period:
                # a new phase: remember it with this cycle's commit (a steady cadence writes nothing)
                self._remember(POST_KEY.format(point.key), state.anchor)
        try:
            await self._send_batches(point, state, deadline)
        except BaseException:
            state.catching_up = True  # what was due goes at the next try, on the same cadence
            raise

    async def _send_batches(self, point: DataPoint, state: _PointState, deadline: float) -> None:
        assert self._store is not None
        outbox = self._store.outbox
        first = True
        while batch := outbox.pending(point.key, self._max_batch):
            if not first:
                if self._timebase.now().timestamp() + self._pace >= deadline:
                    state.catching_up = True
                    return  # the rest goes after the next sample
                await self._timebase.sleep_until(self._timebase.now() + timedelta(seconds=self._pace))
            # Catching up, every accepted batch is committed at once, so a crash re-sends nothing.
            # In the steady state the acknowledgement joins the one commit of the 30-s cycle
            # (with the new sample and the other point's acknowledgement): one WAL frame instead
            # of three, which is what keeps a day under 2 MB at any postRate (see bench_telemetry).
            catching_up = not first or len(batch) == self._max_batch
            await self._post(point, batch, durable=catching_up)
            first = False
            if len(batch) < self._max_batch:
                break
        state.catching_up = False

    async def _post(self, point: DataPoint, batch: list[tuple[int, int, int]], *, durable: bool) -> None:
        assert self._store is not None and self._mirrors is not None
        href = self._mirrors.href(point)
        if href is None or not batch:
            return
        document = readings_post(point, self._lfdi, batch, self._tc.interval_s)
        try:
            await self._server.post(href, document)
            self._points[point.key].accepted_at = self._timebase.now()
        except Rediscover:
            await self._mirrors.lost(point, self._server.tree)
            raise
        except Rejected as exc:
            # A batch the server will never take must not block every later reading behind it.
            _LOGGER.error(
                "Server refused %d %s reading(s) from %s: %s; dropped",
                len(batch),
                point.key,
                tick_time(batch[0][0]),
                exc,
            )
            self.dropped += len(batch)
        self._store.outbox.delivered(point.key, batch[-1][0], commit=durable)

    def _server_failed(self, reason: str, retry_after: float | None, kind: Kind) -> None:
        delay = self._backoff.next_delay(retry_after)
        self._retry_at = self._timebase.now().timestamp() + delay
        self._health.problem(SERVER_PART, f"reporting failed, readings kept in the outbox ({reason})", kind)
        _LOGGER.debug("next report attempt in %.0f s", delay)

    def _prune(self, tick: int) -> None:
        assert self._store is not None
        dropped = self._store.outbox.drop_older_than(tick - self._tc.outbox_max_age_s)
        if dropped:
            count = sum(dropped.values())
            self.dropped += count
            _LOGGER.warning(
                "Dropped %d reading(s) older than %d s that the server never took: %s",
                count,
                self._tc.outbox_max_age_s,
                dropped,
            )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
