"""The DER control engine: feeds server snapshots to the scheduler, drives the executor, owes responses.

One loop, woken by `update()` or at the next moment something changes: an event's effective
start or end (from the schedule), a ramp step or re-assertion (from the executor), or the
fail-safe deadline. It never polls the clock in a tight loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

from app.client.port import ServerPort
from app.config import Config
from app.control.executor import Executor
from app.control.ledger import Ledger
from app.control.modes import PowerCommand, default_command
from app.control.responder import Responder
from app.control.schedule import MISSED, DueResponse, EventRecord, Plan, ProgramView, evaluate
from app.control.site_limit import ConnectionPoint
from app.control.vanished import VanishedEvents
from app.health import Health, Kind
from app.ota.state import FLAG_REFRESH_S, set_control_in_force
from app.sep.der import DefaultDERControl
from app.sep.response import ResponseStatus
from app.store import StoreUnavailable
from hal.errors import HalError
from hal.inverter.base import BatteryInverter

_LOGGER = logging.getLogger(__name__)

PART: Final = "control"
FAILSAFE_PART: Final = "control-failsafe"
#: health name for "the control state cannot be saved" (the battery is steered from memory meanwhile)
STORAGE_PART: Final = "control-storage"
#: the loop beats at least this often, even when nothing is scheduled (supervisor watchdog)
HEARTBEAT_S: Final = 30.0
#: in fail-safe, how often to check whether the server answers again
FAILSAFE_RECHECK_S: Final = 5.0
#: finished events the server no longer lists are forgotten after this long
FORGET_AFTER_S: Final = 30 * 24 * 3600.0
#: more new event milestones than this in one evaluation are logged as one summary line
LOG_EACH_UP_TO: Final = 10
_PRUNE_EVERY_S: Final = 3600.0


_MILESTONES: Final = {
    MISSED: "missed (its window passed while we were not running)",
    ResponseStatus.EVENT_RECEIVED: "received",
    ResponseStatus.EVENT_STARTED: "started",
    ResponseStatus.EVENT_COMPLETED: "completed",
    ResponseStatus.EVENT_CANCELLED: "cancelled",
    ResponseStatus.EVENT_SUPERSEDED: "superseded",
    ResponseStatus.REJECTED_NOT_APPLICABLE: "rejected: a mode this battery cannot obey",
    ResponseStatus.REJECTED_INVALID: "rejected: invalid",
    ResponseStatus.REJECTED_EXPIRED: "rejected: it had ended before it reached us",
}


class ControlEngine:
    """Obeys the server's DER controls with one battery inverter.

    `run()` follows `server.snapshots()`, schedules, drives the inverter and posts responses until
    cancelled; `stop()` releases the battery (register it as a shutdown hook). `update(programs)`
    can also feed programs directly (tools, tests). `in_force_flag` (the updater's
    `control_flag`) exists exactly while a server event is in force, carrying its end.
    """

    def __init__(
        self,
        config: Config,
        inverter: BatteryInverter,
        server: ServerPort,
        lfdi: str,
        *,
        rng: random.Random | None = None,
        health: Health | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        in_force_flag: Path | None = None,
        server_clock_offset: Callable[[], float] | None = None,
        connection_point: ConnectionPoint | None = None,
    ) -> None:
        self._config = config
        #: seconds the server's clock is from ours, told with every event dropped as already ended
        self._server_clock_offset = server_clock_offset
        self._server = server
        self._lfdi = lfdi
        self._server_now = server.now
        self._rng = rng if rng is not None else random.Random()
        self._health = health if health is not None else Health()
        self._monotonic = monotonic
        self._executor = Executor(inverter, config.control, self._health, connection_point=connection_point)
        self._programs: tuple[ProgramView, ...] | None = None
        self._vanished = VanishedEvents()
        self._last_contact: float | None = None
        self._wake = asyncio.Event()
        self._records: dict[str, EventRecord] = {}
        self._saved_default: DefaultDERControl | None = None
        self._failsafe = False
        self._pruned_at: float | None = None
        self._flag = in_force_flag
        self._flagged: float | None = None
        self._flag_synced = False
        self._refused: dict[str, int] = {}
        self._flag_written_at: float | None = None
        # what could not be saved yet (a full or rebuilt store): written by the next save that works
        self._unsaved_records: dict[str, EventRecord] = {}
        self._unsaved_responses: list[DueResponse] = []
        self._default_unsaved = False
        self._generation: int | None = None
        self.plan: Plan | None = None
        self._responder: Responder | None = None
        """The last evaluation (None before the first snapshot or while in fail-safe)."""

    # --- inputs -------------------------------------------------------------------------------

    def update(self, programs: Iterable[ProgramView]) -> None:
        """A fresh read of the DERPrograms, their controls and defaults (also counts as contact)."""
        self._programs = tuple(programs)
        self.server_reached()

    def wake(self) -> None:
        """Look again now (the inverter's ratings changed): the setpoint in force is recomputed."""
        self._wake.set()

    def server_reached(self) -> None:
        """The server answered (even if nothing changed): postpones the fail-safe."""
        self._last_contact = self._monotonic()
        self._wake.set()

    @property
    def responses_waiting(self) -> int:
        """DERControlResponses owed and not yet posted (they go out paced)."""
        return self._responder.waiting if self._responder is not None else 0

    @property
    def setpoint(self) -> float | None:
        """The watts last written to the inverter, or None while the battery is released."""
        return self._executor.written

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled (the supervisor restarts it if it crashes)."""
        ledger = Ledger(self._config.state_dir)
        try:
            self._load(ledger)
            responder = Responder(
                ledger,
                self._server,
                self._lfdi,
                self._health,
                rng=self._rng,
                max_backoff_s=self._config.server.max_backoff_s,
                per_s=self._config.server.responses_per_s,
            )
            self._responder = responder
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(responder.run(), name="control-responses")
                tasks.create_task(self._follow(), name="control-snapshots")
                await self._loop(ledger, responder)
        except Exception:
            # Until the supervisor restarts us nobody steers the battery, and the inverter's own
            # keepalive would hold the last setpoint: hand it back first.
            await self.stop()
            raise
        finally:
            ledger.close()

    def _load(self, ledger: Ledger) -> None:
        """Read the records and the saved default; an unreadable store starts empty (never blocks control)."""
        try:
            self._generation = ledger.generation
            self._records = ledger.records()
            self._saved_default = ledger.last_default()
        except StoreUnavailable as exc:
            _LOGGER.error("control state not loaded, starting from what the server says: %s", exc)
            self._health.problem(STORAGE_PART, f"control state unavailable ({exc})", Kind.STORAGE)

    async def stop(self) -> None:
        """Release the battery to its own mode (shutdown): never leave a setpoint forcing it."""
        self._mark_in_force(None)
        try:
            await self._executor.release()
        except HalError as exc:
            _LOGGER.error("could not release the battery at shutdown (its revert timer will): %s", exc)

    async def _follow(self) -> None:
        async for tree in self._server.snapshots():
            self.update(tree.programs)

    def _silence(self, now: datetime, mono: float) -> float | None:
        """Seconds since the server last answered; None if it never has since we started."""
        ages = []
        if self._last_contact is not None:
            ages.append(mono - self._last_contact)
        tree = self._server.tree
        if tree is not None and tree.read_at is not None:
            # the session refreshes read_at on every successful read, changed or not
            ages.append((now - tree.read_at).total_seconds())
        return min(ages) if ages else None

    async def _loop(self, ledger: Ledger, responder: Responder) -> None:
        while True:
            self._wake.clear()
            now = self._server_now()
            mono = self._monotonic()
            power, next_change, plan = self._decide(now, mono)
            self._executor.command(power)
            executor_due = await self._executor.step(self._monotonic())
            for mrid in self._executor.take_refused():
                # No limit bounds its setpoint: the next evaluation rejects it (252) and moves on.
                self._refused[mrid] = ResponseStatus.REJECTED_NOT_APPLICABLE
                self._wake.set()
            self._mark_in_force(_in_force_until(plan))
            self._health.beat(PART)
            # After the write: persisting must not delay the setpoint at an event's start.
            if plan is not None and self._persist(ledger, plan, mono):
                responder.notify()
            await self._sleep(next_change, executor_due)

    def _decide(self, now: datetime, mono: float) -> tuple[PowerCommand | None, float | None, Plan | None]:
        """What the battery must do now, when to look again (server time), and the plan if one was made."""
        if self._programs is None:
            # After a restart the control state is unknown until the server is read: fail safe.
            return self._fallback(), None, None
        silent = self._silence(now, mono) or 0.0
        if silent > self._config.control.fail_safe_after_s:
            if not self._failsafe:
                self._failsafe = True
                self._health.problem(
                    FAILSAFE_PART,
                    f"no contact with the server for {silent:.0f} s: fail-safe default control",
                    Kind.SERVER,
                )
            self.plan = None
            return self._fallback(), None, None
        if self._failsafe:
            self._failsafe = False
            self._health.ok(FAILSAFE_PART)
        programs = self._vanished.programs(self._programs, self._records)
        plan = evaluate(programs, self._records, now, self._rng, self._refused)
        for mrid in [m for m in self._refused if m in plan.states and plan.states[m].code is not None]:
            del self._refused[mrid]  # rejected for good: its record remembers it
        news: list[tuple[str, int, str | None]] = []
        for record in plan.records:
            old = self._records.get(record.mrid)
            state = plan.states.get(record.mrid)
            problem = state.problem if state is not None else None
            fresh = record.reached - (old.reached if old else frozenset())
            if state is not None and state.ignored and ResponseStatus.EVENT_RECEIVED in fresh:
                # once per mRID, like the milestone (records persist)
                _LOGGER.warning(
                    "event %s: %s; not applied (the battery does not do them): %s",
                    record.mrid,
                    "rejected" if state.code is not None else "applied for the modes the battery does",
                    ", ".join(state.ignored),
                )
            news.extend(
                (record.mrid, m, problem if m == ResponseStatus.REJECTED_INVALID else None)
                for m in sorted(record.reached - (old.reached if old else frozenset()))
            )
            self._records[record.mrid] = record
        self._log_milestones(news)
        self.plan = plan
        return plan.power, plan.next_change, plan

    def _log_milestones(self, news: list[tuple[str, int, str | None]]) -> None:
        """One line per new milestone (mRID, milestone, why it is invalid); a list that brings many at
        once gets one summary line. A milestone is reached once per mRID (records persist): so is its line."""
        expired = ResponseStatus.REJECTED_EXPIRED
        offset = self._server_clock_offset() if self._server_clock_offset is not None else None
        clock = f" (server clock {offset:+.0f} s from ours)" if offset is not None else ""

        def text(milestone: int) -> str:
            return _MILESTONES.get(milestone, str(milestone)) + (clock if milestone == expired else "")

        def warns(milestone: int, problem: str | None) -> bool:
            return milestone == expired or problem is not None

        if len(news) <= LOG_EACH_UP_TO:
            for mrid, milestone, problem in news:
                if problem is not None:
                    _LOGGER.warning("event %s: rejected: invalid, %s", mrid, problem)
                else:
                    level = logging.WARNING if warns(milestone, problem) else logging.INFO
                    _LOGGER.log(level, "event %s: %s", mrid, text(milestone))
            return
        counts: dict[int, int] = {}
        for _, milestone, _ in news:
            counts[milestone] = counts.get(milestone, 0) + 1
        mrids = sorted({mrid for mrid, _, _ in news})
        _LOGGER.log(
            logging.WARNING if any(warns(m, p) for _, m, p in news) else logging.INFO,
            "%d events changed: %s (first: %s)",
            len(mrids),
            ", ".join(f"{n} {text(m)}" for m, n in sorted(counts.items())),
            ", ".join(mrids[:3]),
        )

    def _mark_in_force(self, until: float | None) -> None:
        """Keep the flag that tells the updater a grid-control event is in force, and until when.

        The updater (`app.ota.state.control_in_force`) waits while the flag's `until` (epoch
        seconds) lies ahead and the flag is fresh: it is rewritten every FLAG_REFRESH_S while an
        event is in force, so one left behind by a crashed gateway stops blocking updates in minutes.
        """
        mono = self._monotonic()
        written = self._flag_written_at
        fresh = until is None or (written is not None and mono - written < FLAG_REFRESH_S)
        if self._flag is None or (self._flag_synced and until == self._flagged and fresh):
            return
        try:
            set_control_in_force(self._flag, until)
        except OSError as exc:
            _LOGGER.warning("cannot %s %s: %s", "update" if until else "remove", self._flag, exc)
            return
        self._flagged = until
        self._flag_synced = True
        self._flag_written_at = mono

    def _fallback(self) -> PowerCommand | None:
        """The DefaultDERControl last seen, else nothing (release)."""
        return default_command(self._saved_default) if self._saved_default is not None else None

    def _persist(self, ledger: Ledger, plan: Plan, mono: float) -> bool:
        """Save what changed (True when responses were recorded); what the store cannot take waits."""
        for record in plan.records:
            self._unsaved_records[record.mrid] = record
        self._unsaved_responses.extend(plan.responses)
        if plan.default != self._saved_default:
            self._saved_default = plan.default
            self._default_unsaved = True
        try:
            generation = ledger.generation
            if generation != self._generation:  # the store was rebuilt: save again all we hold
                self._unsaved_records = {**self._records, **self._unsaved_records}
                self._default_unsaved = True
            ledger.commit(list(self._unsaved_records.values()), self._unsaved_responses)
            owed = bool(self._unsaved_responses)
            self._unsaved_records, self._unsaved_responses = {}, []
            if self._default_unsaved:
                ledger.save_default(self._saved_default)
                self._default_unsaved = False
            self._generation = generation
            if self._pruned_at is None or mono - self._pruned_at > _PRUNE_EVERY_S:
                self._pruned_at = mono
                forgotten = ledger.prune(plan.states.keys(), plan.now - FORGET_AFTER_S)
                if forgotten:
                    _LOGGER.debug("forgot %d finished events", forgotten)
                    for mrid in set(self._records) - set(ledger.records()):
                        del self._records[mrid]
        except StoreUnavailable as exc:
            self._health.problem(
                STORAGE_PART, f"control state not saved, kept in memory ({exc})", Kind.STORAGE
            )
            return False
        self._health.ok(STORAGE_PART)
        return owed

    async def _sleep(self, next_change: float | None, executor_due: float | None) -> None:
        delay = HEARTBEAT_S
        if next_change is not None:
            delay = min(delay, next_change - self._server_now().timestamp())
        mono = self._monotonic()
        if executor_due is not None:
            delay = min(delay, executor_due - mono)
        silent = self._silence(self._server_now(), mono)
        if self._failsafe:
            # an unchanged read publishes no snapshot; look for the fresh read_at often enough
            delay = min(delay, FAILSAFE_RECHECK_S)
        elif silent is not None:
            delay = min(delay, self._config.control.fail_safe_after_s - silent + 0.001)
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)


def _in_force_until(plan: Plan | None) -> float | None:
    """The end (epoch seconds) of the events in force, or None when none is."""
    if plan is None or not plan.in_force:
        return None
    return max(plan.states[mrid].end for mrid in set(plan.in_force.values()))
