"""An in-process battery model: power follows the setpoint, state of charge integrates power.

Pure logic: every method takes `now` (seconds on any monotonic scale) and nothing sleeps, so tests
and simulators drive it with literal times.
"""

from __future__ import annotations

import math

from hal.inverter.battery import BatterySpec

# Integration step: small enough that ramps and the SoC limits stay accurate when the clock jumps.
_MAX_STEP_S = 0.25


class BatteryModel:
    """State of one simulated battery, advanced explicitly with `advance(now)`."""

    def __init__(self, spec: BatterySpec, now: float) -> None:
        self.spec = spec
        self._t = now
        self._power_w = 0.0
        self._soc_pct = spec.initial_soc_pct
        self._target_w: float | None = None
        self._expires: float | None = None
        #: what the battery does in its own mode (no setpoint), W: 0 = idle; a test may set a house load
        self.own_w = 0.0
        self._cap_w: float | None = None
        self._charge_cap_w: float | None = None
        self._cap_expires: float | None = None
        # Deterministic per-seed phase so two simulated batteries do not wander in lock-step.
        self._phase = (spec.seed * 0.6180339887) % 1.0 * 2 * math.pi

    @property
    def power_w(self) -> float:
        """Actual AC power, W (+ discharge, − charge) at the last `advance`."""
        return self._power_w

    @property
    def soc_pct(self) -> float:
        """State of charge, percent, at the last `advance`."""
        return self._soc_pct

    @property
    def target_w(self) -> float | None:
        """The commanded power, or None when the battery follows its own mode (idle)."""
        return self._target_w

    def stored_wh(self) -> float:
        """Energy now stored, Wh."""
        return self._soc_pct / 100.0 * self.spec.capacity_wh

    def hz(self, now: float) -> float:
        """Grid frequency seen by the inverter: a slow deterministic wander around nominal."""
        t = now + self._phase * 10.0
        slow = 0.02 * math.sin(2 * math.pi * t / 37.0)
        fast = 0.008 * math.sin(2 * math.pi * t / 7.3 + self._phase)
        return self.spec.nominal_hz + slow + fast

    @property
    def caps_w(self) -> tuple[float | None, float | None]:
        """The device-side limits in force: (discharge, charge) in positive W, None = no cap."""
        return self._cap_w, self._charge_cap_w

    def limit(
        self,
        discharge_w: float | None,
        now: float,
        hold_s: float | None = None,
        *,
        charge_w: float | None = None,
    ) -> None:
        """Cap discharge at `discharge_w` and charge at `charge_w` (None = no cap), whatever the mode;
        with `hold_s`, the caps lapse after that long unless set again."""
        self.advance(now)
        self._cap_w = None if discharge_w is None else max(0.0, discharge_w)
        self._charge_cap_w = None if charge_w is None else max(0.0, charge_w)
        capped = discharge_w is not None or charge_w is not None
        self._cap_expires = now + hold_s if capped and hold_s is not None else None

    def cap_remaining_s(self, now: float) -> float | None:
        """Seconds until the caps lapse, or None when no timer runs."""
        return None if self._cap_expires is None else max(0.0, self._cap_expires - now)

    def revert_remaining_s(self, now: float) -> float | None:
        """Seconds until the active command reverts, or None when no timer runs."""
        if self._expires is None:
            return None
        return max(0.0, self._expires - now)

    def clamp(self, watts: float) -> float:
        """Limit a request to the charge/discharge ratings."""
        return max(-self.spec.max_charge_w, min(self.spec.max_discharge_w, self.spec.max_w, watts))

    def command(self, watts: float | None, now: float, hold_s: float | None = None) -> None:
        """Set the target power (None = own mode); with `hold_s`, revert to own mode after that long."""
        self.advance(now)
        self._target_w = None if watts is None else self.clamp(watts)
        self._expires = None if watts is None or hold_s is None else now + hold_s

    def refresh(self, now: float, hold_s: float) -> None:
        """Restart the revert timer of the active command."""
        self.advance(now)
        if self._target_w is not None:
            self._expires = now + hold_s

    def advance(self, now: float) -> None:
        """Integrate ramp, state of charge and the revert timer up to `now`."""
        while self._t < now:
            step_end = min(now, self._t + _MAX_STEP_S)
            for expires in (self._expires, self._cap_expires):
                if expires is not None and self._t < expires <= step_end:
                    step_end = expires
            self._step(step_end - self._t)
            self._t = step_end
            if self._expires is not None and self._t >= self._expires:
                self._target_w = None
                self._expires = None
            if self._cap_expires is not None and self._t >= self._cap_expires:
                self._cap_w = self._charge_cap_w = None
                self._cap_expires = None

    def _step(self, dt: float) -> None:
        target = self.clamp(self.own_w) if self._target_w is None else self._target_w
        if self._cap_w is not None:
            target = min(target, self._cap_w)
        if self._charge_cap_w is not None:
            target = max(target, -self._charge_cap_w)
        # An empty battery cannot discharge and a full one cannot charge, whatever was commanded.
        if self._soc_pct <= 0.0:
            target = min(target, 0.0)
        if self._soc_pct >= 100.0:
            target = max(target, 0.0)
        max_delta = self.spec.ramp_w_per_s * dt
        delta = max(-max_delta, min(max_delta, target - self._power_w))
        # Trapezoid: energy over the step uses the mean of start and end power.
        start = self._power_w
        self._power_w = start + delta
        mean_w = (start + self._power_w) / 2.0
        self._soc_pct -= mean_w * dt / 3600.0 / self.spec.capacity_wh * 100.0
        self._soc_pct = max(0.0, min(100.0, self._soc_pct))
