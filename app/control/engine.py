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
from datetime import UTC, datetime
from typing import Final

from app.config import Config
from app.control.executor import Executor
from app.control.ledger import Ledger
from app.control.modes import PowerCommand, default_command
from app.control.responder import Poster, Responder
from app.control.schedule import EventRecord, Plan, ProgramControls, evaluate
from app.health import Health
from app.sep.der import DefaultDERControl
from hal.errors import HalError
from hal.inverter.base import BatteryInverter

_LOGGER = logging.getLogger(__name__)

PART: Final = "control"
FAILSAFE_PART: Final = "control-failsafe"
#: the loop beats at least this often, even when nothing is scheduled (supervisor watchdog)
HEARTBEAT_S: Final = 30.0
#: finished events the server no longer lists are forgotten after this long
FORGET_AFTER_S: Final = 30 * 24 * 3600.0
_PRUNE_EVERY_S: Final = 3600.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ControlEngine:
    """Obeys the server's DER controls with one battery inverter.

    `clock` returns the server's time (the session's ServerClock.now); `poster.post(href, model)`
    delivers responses; `update(programs)` hands in each fresh read of the DERPrograms and
    `server_reached()` records a contact that brought nothing new. `run()` runs until cancelled;
    `stop()` releases the battery (register it as a shutdown hook).
    """

    def __init__(
        self,
        config: Config,
        inverter: BatteryInverter,
        poster: Poster,
        lfdi: str,
        *,
        clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
        health: Health | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._poster = poster
        self._lfdi = lfdi
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._health = health if health is not None else Health()
        self._monotonic = monotonic
        self._executor = Executor(inverter, config.control, self._health)
        self._programs: tuple[ProgramControls, ...] | None = None
        self._last_contact: float | None = None
        self._wake = asyncio.Event()
        self._records: dict[str, EventRecord] = {}
        self._saved_default: DefaultDERControl | None = None
        self._failsafe = False
        self._pruned_at: float | None = None
        self.plan: Plan | None = None
        """The last evaluation (None before the first snapshot or while in fail-safe)."""

    # --- inputs -------------------------------------------------------------------------------

    def update(self, programs: Iterable[ProgramControls]) -> None:
        """A fresh read of the DERPrograms, their controls and defaults (also counts as contact)."""
        self._programs = tuple(programs)
        self.server_reached()

    def server_reached(self) -> None:
        """The server answered (even if nothing changed): postpones the fail-safe."""
        self._last_contact = self._monotonic()
        self._wake.set()

    @property
    def setpoint(self) -> float | None:
        """The watts last written to the inverter, or None while the battery is released."""
        return self._executor.written

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled (the supervisor restarts it if it crashes)."""
        ledger = Ledger(self._config.state_dir)
        try:
            self._records = ledger.records()
            self._saved_default = ledger.last_default()
            responder = Responder(
                ledger,
                self._poster,
                self._lfdi,
                self._health,
                rng=self._rng,
                max_backoff_s=self._config.server.max_backoff_s,
            )
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(responder.run(), name="control-responses")
                await self._loop(ledger, responder)
        finally:
            ledger.close()

    async def stop(self) -> None:
        """Release the battery to its own mode (shutdown): never leave a setpoint forcing it."""
        try:
            await self._executor.release()
        except HalError as exc:
            _LOGGER.error("could not release the battery at shutdown (its revert timer will): %s", exc)

    async def _loop(self, ledger: Ledger, responder: Responder) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            mono = self._monotonic()
            power, next_change, plan = self._decide(now, mono)
            self._executor.command(power)
            executor_due = await self._executor.step(self._monotonic())
            self._health.beat(PART)
            if plan is not None:
                # After the write: persisting must not delay the setpoint at an event's start.
                self._persist(ledger, plan, mono)
                if plan.responses:
                    responder.notify()
            await self._sleep(next_change, executor_due)

    def _decide(self, now: datetime, mono: float) -> tuple[PowerCommand | None, float | None, Plan | None]:
        """What the battery must do now, when to look again (server time), and the plan if one was made."""
        if self._programs is None:
            # After a restart the control state is unknown until the server is read: fail safe.
            return self._fallback(), None, None
        assert self._last_contact is not None
        silent = mono - self._last_contact
        if silent > self._config.control.fail_safe_after_s:
            if not self._failsafe:
                self._failsafe = True
                self._health.problem(
                    FAILSAFE_PART, f"no contact with the server for {silent:.0f} s: fail-safe default control"
                )
            self.plan = None
            return self._fallback(), None, None
        if self._failsafe:
            self._failsafe = False
            self._health.ok(FAILSAFE_PART)
        plan = evaluate(self._programs, self._records, now, self._rng)
        for record in plan.records:
            self._records[record.mrid] = record
        self.plan = plan
        return plan.power, plan.next_change, plan

    def _fallback(self) -> PowerCommand | None:
        """The DefaultDERControl last seen, else nothing (release)."""
        return default_command(self._saved_default) if self._saved_default is not None else None

    def _persist(self, ledger: Ledger, plan: Plan, mono: float) -> None:
        ledger.commit(plan.records, plan.responses)
        if plan.default != self._saved_default:
            ledger.save_default(plan.default)
            self._saved_default = plan.default
        if self._pruned_at is None or mono - self._pruned_at > _PRUNE_EVERY_S:
            self._pruned_at = mono
            forgotten = ledger.prune(plan.states.keys(), plan.now - FORGET_AFTER_S)
            if forgotten:
                _LOGGER.debug("forgot %d finished events", forgotten)
                for mrid in set(self._records) - set(ledger.records()):
                    del self._records[mrid]

    async def _sleep(self, next_change: float | None, executor_due: float | None) -> None:
        delay = HEARTBEAT_S
        if next_change is not None:
            delay = min(delay, next_change - self._clock().timestamp())
        mono = self._monotonic()
        if executor_due is not None:
            delay = min(delay, executor_due - mono)
        if self._last_contact is not None and not self._failsafe:
            delay = min(delay, self._last_contact + self._config.control.fail_safe_after_s - mono + 0.001)
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
