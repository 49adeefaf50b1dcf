"""Turns the PowerCommand in force into inverter writes: scaling, clamps, ramps and re-assertion."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Final

from app.config import ControlConfig
from app.control.modes import DEFAULT_SOURCE, PowerCommand
from app.control.site_limit import (
    METER_CHECK_S,
    ConnectionPoint,
    battery_charge_cap,
    battery_discharge_cap,
)
from app.health import Health, Kind
from hal.errors import ConfigurationError, HalError, NoPowerLimit
from hal.inverter.base import BatteryInverter, Ratings, Telemetry

_LOGGER = logging.getLogger(__name__)

PART: Final = "control"
#: a failed inverter call is retried this soon (the device-side revert timer covers the gap)
RETRY_S: Final = 2.0
#: while a command is in force, the live ratings are asked for at least this often (the guard
#: re-reads the device once its copy is a minute old), so a lowered rating is obeyed within a minute
RATINGS_CHECK_S: Final = 60.0
#: at most this long between the writes of a ramp
RAMP_STEP_S: Final = 1.0
#: while the battery is driven, its state of charge is checked this often against the limits
SOC_CHECK_S: Final = 10.0
#: while the battery is in its own mode, a reading is kept at most this old for the next write
IDLE_SAMPLE_S: Final = 60.0
#: an older reading (or none: just started, inverter unreadable) is refreshed before writing
SAMPLE_MAX_AGE_S: Final = 120.0
#: a state of charge that turns unknown or implausible: the last good one limits for this long
SOC_HOLD_S: Final = 600.0


def fixed_w_reference(ratings: Ratings, discharge: bool) -> float | None:
    """The watts 100 % of opModFixedW means: the battery inverter's own max discharge or charge rate."""
    # 2030.5-2018 §10.10: + is a percentage of setMaxDischargeRateW, − of setMaxChargeRateW. Those
    # are what DERSettings reports (app.telemetry.der), from the same Ratings methods, so the
    # server computes the watts we write.
    return ratings.discharge_limit_w() if discharge else ratings.charge_limit_w()


def requested_watts(command: PowerCommand, ratings: Ratings) -> float | None:
    """The command's setpoint as signed watts (+ discharge, − charge) before clamps; None if ratings are
    unknown (or it sets no power: see `PowerCommand.has_setpoint`)."""
    if command.cease:
        return 0.0  # opModConnect / opModEnergize false: no power exchanged, whatever else is asked
    if command.target_w is not None:
        return command.target_w
    if command.fixed_w is None:
        return None
    reference = fixed_w_reference(ratings, command.fixed_w >= 0)
    if reference is None:
        return None
    return command.fixed_w / 10000.0 * reference


def max_limit_w(command: PowerCommand, ratings: Ratings) -> float | None:
    """opModMaxLimW in watts (a share of setMaxW); None when there is no cap or setMaxW is unknown."""
    if command.max_limit is None:
        return None
    reference = ratings.active_power_limit_w()
    if reference is None:
        return None
    return command.max_limit / 10000.0 * reference


def bounds_w(command: PowerCommand, ratings: Ratings) -> tuple[float, float] | None:
    """(most charge, most discharge) the command's limits allow, as positive watts (inf: no limit);
    None when opModMaxLimW is asked and setMaxW is unknown."""
    charge = discharge = math.inf
    if command.max_limit is not None:
        cap = max_limit_w(command, ratings)
        if cap is None:
            return None
        charge = discharge = cap
    if command.discharge_cap_w is not None:
        discharge = min(discharge, command.discharge_cap_w)
    if command.charge_cap_w is not None:
        charge = min(charge, command.charge_cap_w)
    return charge, discharge


def capped(watts: float, bounds: tuple[float, float]) -> float:
    """`watts` held within (most charge, most discharge)."""
    charge, discharge = bounds
    return max(-charge, min(discharge, watts))


def _smaller(value: float, other: float | None) -> float:
    return value if other is None else min(value, other)


def soc_clamp(watts: float, soc_pct: float | None, config: ControlConfig) -> float:
    """No discharge at or below min SoC, no charge at or above max SoC (unknown SoC does not clamp)."""
    if soc_pct is None:
        return watts
    if watts > 0 and soc_pct <= config.min_soc_percent:
        return 0.0
    if watts < 0 and soc_pct >= config.max_soc_percent:
        return 0.0
    return watts


@dataclass(slots=True)
class _Ramp:
    start_w: float
    start_t: float
    duration_s: float

    def value(self, target_w: float, now: float) -> float | None:
        """The ramp's value at `now`, or None once it has reached the target."""
        done = (now - self.start_t) / self.duration_s
        if done >= 1.0:
            return None
        return self.start_w + (target_w - self.start_w) * max(0.0, done)


class Executor:
    """Owns the inverter's setpoint: call `command()` when the plan changes, `step()` when due."""

    def __init__(
        self,
        inverter: BatteryInverter,
        config: ControlConfig,
        health: Health,
        *,
        connection_point: ConnectionPoint | None = None,
    ) -> None:
        self._inverter = inverter
        #: the site meter, when there is one: export limits hold at the grid connection point
        self._site = connection_point
        self._site_held = False
        self._config = config
        self._health = health
        self._command: PowerCommand | None = None
        self._changed = True
        self._written: float | None = None
        self._released = False
        self._last_write = 0.0
        self._ramp: _Ramp | None = None
        self._clamps: set[tuple[str, str]] = set()
        self._failing = False
        self._sample: Telemetry | None = None
        self._sample_at = 0.0
        self._sample_tried = -1
        self._steps = 0
        self._soc: tuple[float, float] | None = None
        self._refused: set[str] = set()
        self._ratings: Ratings | None = None
        #: a cap-only command (no setpoint): the power the battery is held at once its own mode broke
        #: the cap (None while its own mode stays within it)
        self._pinned: float | None = None
        #: the (discharge, charge) caps the inverter itself holds for a cap-only command, else None
        self._limits: tuple[float | None, float | None] | None = None
        #: the configuration error in the way (None: none); only a new command tries again
        self._misconfigured: str | None = None
        self._pinned_own = 0.0

    @property
    def written(self) -> float | None:
        """The last setpoint written (W), or None while the battery is released."""
        return self._written

    def take_refused(self) -> set[str]:
        """Events whose command could not be bounded (`NoPowerLimit`) since the last call: reject them."""
        refused, self._refused = self._refused, set()
        return refused

    def command(self, command: PowerCommand | None) -> None:
        """Adopt what the plan says is in force; the next `step()` acts on it."""
        if command != self._command:
            self._command = command
            self._changed = True
            self._pinned = None

    async def step(self, now: float) -> float | None:
        """Write what is due at monotonic time `now`; return when the next step is due (None: idle)."""
        if self._misconfigured is not None and not self._changed:
            return None  # a configuration error: only a new command (or a restart) tries again
        try:
            due = await self._step(now)
        except NoPowerLimit as exc:
            # Nothing safe can be written: never leave an old setpoint forcing the battery.
            self._failing = True
            self._health.problem(PART, f"nothing written to the inverter: {exc}", Kind.INVERTER)
            command = self._command
            if command is not None and command.source != DEFAULT_SOURCE:
                self._refused.add(command.source)
            try:
                await self._release()
            except HalError as again:
                _LOGGER.debug("release after a refused setpoint failed: %s", again)
            return now + RATINGS_CHECK_S
        except ConfigurationError as exc:
            # Named recovery: retrying cannot help. Health's one line says what the installer must
            # fix; a new command tries again, and so does the restart a changed configuration brings.
            self._failing = True
            self._misconfigured = str(exc)
            self._health.problem(
                PART,
                f"the inverter cannot be driven as configured: {exc}; fix the inverter section of the "
                "configuration (profile, unit_id) or the inverter's own settings; not retried until "
                "the configuration changes or a new control arrives",
                Kind.CONFIGURATION,
            )
            return None
        except HalError as exc:
            self._failing = True
            # The kind of failure, not its text: Health logs each change, and texts vary per attempt.
            _LOGGER.debug("inverter step failed: %s", exc)
            self._health.problem(PART, f"inverter: {type(exc).__name__}", Kind.INVERTER)
            return now + RETRY_S
        if self._failing:
            self._failing = False
            self._misconfigured = None
            self._health.ok(PART)
        return due

    async def release(self) -> None:
        """Hand the battery back to its own mode now (fail-safe, shutdown)."""
        self._command = None
        self._changed = False
        await self._release()

    async def _release(self) -> None:
        self._ramp = None
        self._limits = None
        await self._inverter.release()
        if not self._released:
            _LOGGER.info("battery released to its own mode")
        self._released = True
        self._written = None

    async def _step(self, now: float) -> float | None:
        self._steps += 1
        command = self._command
        if command is None:
            if not self._released:
                await self._release()
            # Idle, nothing waits: keep a reading and the ratings for the next event's start.
            await self._sample_if_older(IDLE_SAMPLE_S, now)
            await self._refresh_ratings()
            return None
        command = await self._at_connection_point(command, now)
        if not command.has_setpoint:
            return await self._step_capped(command, now)
        if self._limits is not None:
            await self._release()  # the inverter's limits of a cap-only command no longer hold
        # Like the reading, the ratings do not delay the write (a 702 read is ~140 ms at 9600
        # baud): the copy of the last step serves, the guard clamps to its own live copy anyway,
        # and the live ratings asked for after the write correct it in the next step, at once.
        ratings = self._ratings
        target = None if ratings is None else self._target(command, ratings)
        if target is None:
            ratings = await self._inverter.read_ratings()
            target = self._target(command, ratings)
            if target is None:
                raise NoPowerLimit(
                    "no power limit known (no plausible inverter rating, no inverter.nameplate) "
                    f"for {command.source}"
                )
        assert ratings is not None
        # The write must not wait on a reading (~350 ms on RS-485 at 9600 baud against a 250 ms
        # event-start budget): the last one serves, and a fresh one follows the write. Only when
        # there is none recent enough for the state-of-charge limits is it read first.
        await self._sample_if_older(SAMPLE_MAX_AGE_S, now)
        if self._changed:
            self._changed = False
            # the battery's own power at most IDLE_SAMPLE_S old: where a ramp from its own mode starts
            measured = self._sample.w if self._sample is not None else None
            self._start_ramp(command, target, ratings, measured, now)
        value = target
        if self._ramp is not None:
            ramped = self._ramp.value(target, now)
            if ramped is None:
                self._ramp = None
            else:
                value = ramped
        limited = self._soc_limited(command, value, now)
        if not self._write_due(limited, now) and now - self._sample_at >= SOC_CHECK_S:
            # Nothing to write yet, so nothing waits: check the state of charge with a fresh reading.
            await self._sample_if_older(0.0, now)
            limited = self._soc_limited(command, value, now)
        if self._write_due(limited, now):
            await self._write(command, limited, now)
            await self._sample_if_older(0.0, now)  # unless it was read (or failed) this step
            again = self._soc_limited(command, value, now)
            if again != limited:
                await self._write(command, again, now)
        # The guard re-reads the device once its copy is a minute old; a change is obeyed at once.
        if await self._refresh_ratings() != ratings:
            return now
        reassert = float(self._config.reassert_interval_s)
        due = min(self._last_write + reassert, now + RATINGS_CHECK_S)
        if self._ramp is not None:
            due = min(due, now + RAMP_STEP_S)
        elif self._written != 0.0:
            due = min(due, now + SOC_CHECK_S)
        if self._site_held:
            due = min(due, now + METER_CHECK_S)  # the site's export follows the meter each cycle
        return due

    async def _at_connection_point(self, command: PowerCommand, now: float) -> PowerCommand:
        """With a site meter, opModExpLimW and opModImpLimW hold at the connection point: the battery's
        caps follow the meter and the battery's power each step (the battery alone while it is silent)."""
        self._site_held = False
        export_limit, import_limit = command.export_limit_w, command.import_limit_w
        if self._site is None or (export_limit is None and import_limit is None):
            return command
        self._site_held = True
        await self._sample_if_older(0.0, now)
        battery = self._sample.w if self._sample is not None and self._sample_at == now else None
        export = await self._site.site_export(battery, now)
        if export is None or battery is None:
            return command  # the caps as the command gives them: at the battery
        discharge, charge = command.discharge_cap_w, command.charge_cap_w
        if export_limit is not None:
            discharge = _smaller(
                battery_discharge_cap(export_limit, export, battery), command.generation_limit_w
            )
        if import_limit is not None:
            charge = _smaller(battery_charge_cap(import_limit, export, battery), command.load_limit_w)
        return dataclasses.replace(command, discharge_cap_w=discharge, charge_cap_w=charge)

    def _target(self, command: PowerCommand, ratings: Ratings) -> float | None:
        """The command in watts, within its opModMaxLimW and held to the ratings; None when no limit
        bounds it."""
        asked = requested_watts(command, ratings)
        if asked is None:
            return None
        bounds = bounds_w(command, ratings)
        if bounds is None:
            return None
        within = capped(asked, bounds)
        self._note_clamp(command, "control's limits", asked, within)
        asked = within
        target = ratings.clamp(asked)
        if target is not None:
            self._note_clamp(command, "inverter's rating or nameplate", asked, target)
        return target

    async def _step_capped(self, command: PowerCommand, now: float) -> float:
        """A cap with no setpoint: the battery keeps its own mode while it stays within the cap; once
        its own power breaks it, it is held at the cap until the command changes."""
        ratings = self._ratings if self._ratings is not None else await self._inverter.read_ratings()
        bounds = bounds_w(command, ratings)
        if bounds is None:
            ratings = await self._inverter.read_ratings()
            bounds = bounds_w(command, ratings)
            if bounds is None:
                raise NoPowerLimit(f"opModMaxLimW of {command.source} without a known setMaxW")
        self._changed = False
        reassert = float(self._config.reassert_interval_s)
        if self._pinned is None and await self._device_limits(command, bounds, now):
            # the battery keeps its own mode under caps the inverter holds (and reverts by itself)
            await self._refresh_ratings()
            due = min(self._last_write + reassert, now + RATINGS_CHECK_S)
            return min(due, now + METER_CHECK_S) if self._site_held else due
        if self._pinned is None:
            if not self._released:
                await self._release()  # a setpoint (or limits) of an earlier command no longer holds
            await self._sample_if_older(SOC_CHECK_S, now)
            own = self._sample.w if self._sample is not None else None
            if own is not None and capped(own, bounds) != own:
                self._pinned = capped(own, bounds)
                self._pinned_own = own
                _LOGGER.warning(
                    "battery's own mode at %.0f W breaks %s's limit: held at %.0f W",
                    own,
                    command.source,
                    self._pinned,
                )
        if self._pinned is not None and self._site_held:
            self._pinned = capped(self._pinned_own, bounds)  # the cap follows the site meter
        if self._pinned is not None:
            held = ratings.clamp(self._pinned)
            if held is None:
                raise NoPowerLimit(f"no power limit known for {command.source}")
            limited = self._soc_limited(command, held, now)
            if self._write_due(limited, now):
                await self._write(command, limited, now)
        await self._refresh_ratings()
        check = METER_CHECK_S if self._site_held else SOC_CHECK_S
        if self._pinned is None:
            return now + check
        return min(self._last_write + reassert, now + check)

    async def _device_limits(self, command: PowerCommand, bounds: tuple[float, float], now: float) -> bool:
        """Have the inverter hold a cap-only command's caps as limits (rewritten every reassert
        interval, which restarts their revert timer); False when it cannot."""
        charge, discharge = bounds
        caps = (None if math.isinf(discharge) else discharge, None if math.isinf(charge) else charge)
        if caps == self._limits and now - self._last_write < self._config.reassert_interval_s:
            return True
        if self._limits is None and not self._released:
            await self._release()  # a setpoint of an earlier command no longer holds
        if not await self._inverter.apply_limits(*caps):
            return False
        if caps != self._limits:
            _LOGGER.info(
                "limits for %s held by the inverter (discharge %s, charge %s); the battery keeps its "
                "own mode",
                command.source,
                "free" if caps[0] is None else f"<= {caps[0]:.0f} W",
                "free" if caps[1] is None else f"<= {caps[1]:.0f} W",
            )
        self._limits = caps
        self._released = False
        self._written = None
        self._last_write = now
        return True

    async def _refresh_ratings(self) -> Ratings | None:
        """The live ratings (remembered for the next step); the last ones while the inverter is unreadable."""
        try:
            self._ratings = await self._inverter.read_ratings()
        except HalError as exc:
            _LOGGER.debug("ratings not read: %s", exc)
        return self._ratings

    def _soc_limited(self, command: PowerCommand, value: float, now: float) -> float:
        # A state of charge that turned unknown or implausible (the guard says so once) does not
        # silently drop the limits: the last good one holds for a while.
        soc = self._soc[1] if self._soc is not None and now - self._soc[0] <= SOC_HOLD_S else None
        limited = soc_clamp(value, soc, self._config)
        self._note_clamp(command, "state of charge", value, limited)
        return round(limited, 1)

    def _write_due(self, watts: float, now: float) -> bool:
        reassert = float(self._config.reassert_interval_s)
        return watts != self._written or now - self._last_write >= reassert or self._released

    async def _write(self, command: PowerCommand, watts: float, now: float) -> None:
        held = await self._inverter.set_active_power(watts)
        if watts != self._written:
            # a ramp's intermediate steps are not news; where it settles is
            level = logging.DEBUG if self._ramp is not None else logging.INFO
            _LOGGER.log(level, "setpoint %.0f W for %s (inverter holds %.0f W)", watts, command.source, held)
        self._written = watts
        self._released = False
        self._last_write = now

    async def _sample_if_older(self, max_age_s: float, now: float) -> None:
        """Read the inverter if the last reading is older than `max_age_s`, at most once per step."""
        if self._sample is not None and now - self._sample_at < max_age_s:
            return
        if self._sample_tried == self._steps:
            return
        self._sample_tried = self._steps
        try:
            self._sample = await self._inverter.read_telemetry()
        except HalError as exc:
            _LOGGER.debug("telemetry unknown: %s", exc)
            if self._sample is not None and now - self._sample_at >= SAMPLE_MAX_AGE_S:
                self._sample = None  # too old to clamp by: unknown does not clamp
            return
        self._sample_at = now
        if self._sample.soc_pct is not None:
            self._soc = (now, self._sample.soc_pct)

    def _start_ramp(
        self, command: PowerCommand, target: float, ratings: Ratings, measured: float | None, now: float
    ) -> None:
        self._ramp = None
        # From what we last wrote; from the battery's own power when it was in its own mode.
        start = self._written if self._written is not None else measured
        if start is None or start == target:
            return
        duration = command.ramp_s or 0.0
        if not duration and command.grad_pct_per_s:
            # setGradW: hundredths of a percent of setMaxW per second (2030.5 DefaultDERControl).
            max_w = ratings.active_power_limit_w()
            if max_w:
                duration = abs(target - start) / (command.grad_pct_per_s / 100.0 * max_w)
        if duration > 0:
            self._ramp = _Ramp(start, now, duration)

    def _note_clamp(self, command: PowerCommand, kind: str, asked: float, got: float) -> None:
        key = (command.source, kind)
        if asked != got and key not in self._clamps:
            self._clamps.add(key)
            _LOGGER.warning("%s asks %.0f W; limited to %.0f W by the %s", command.source, asked, got, kind)
        elif asked == got:
            self._clamps.discard(key)
