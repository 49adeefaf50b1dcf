"""The update state machine: pure transitions of the persisted update state, given events and `now`.

Phases, in order: IDLE → STAGING (unpacking into a new release folder) → SWITCHING (about to flip
`current`) → TRIAL (new release running, must reach READY and stay healthy) → IDLE (committed);
from TRIAL (or a start-up in TRIAL) → ROLLING_BACK → IDLE (rolled back).

`now` is monotonic seconds (CLOCK_MONOTONIC, shared by every process within one boot): a Pi has no
RTC, and NTP may step the wall clock by hours during a trial. A start-up (Boot) restarts every
timer, so no time has to survive a reboot. No I/O here: the shell in updater.py performs what a
phase asks for, feeds back the result, and stamps outcomes with the time of day for reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from app.ota.settings import OtaSettings

Result = Literal["committed", "rolled_back", "failed"]
#: versions that failed here are not offered again by the fleet poller; the list stays short
MAX_FAILED = 10


class Phase(StrEnum):
    """Where an update stands."""

    IDLE = "idle"
    STAGING = "staging"
    SWITCHING = "switching"
    TRIAL = "trial"
    ROLLING_BACK = "rolling_back"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the last update ended, kept until the fleet has been told."""

    version: str
    from_version: str | None
    result: Result
    reason: str
    at: float
    reported: bool = False


@dataclass(frozen=True, slots=True)
class UpdateState:
    """Everything that must survive a power cut to finish or undo an update."""

    phase: Phase = Phase.IDLE
    #: the committed release: what we fall back to
    known_good: str | None = None
    #: the release being installed or tried
    target: str | None = None
    since: float = 0.0
    ready_since: float | None = None
    trial_boots: int = 0
    reason: str | None = None
    failed: tuple[str, ...] = ()
    last: Outcome | None = None
    #: highest fleet-manifest serial seen (an older manifest is a replay)
    manifest_serial: int = 0

    @property
    def updating(self) -> bool:
        """Whether an update is under way (the LED shows "updating — do not power off")."""
        return self.phase is not Phase.IDLE


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """A verified bundle for `version` is about to be unpacked; `running` becomes the fallback."""

    version: str
    running: str | None


@dataclass(frozen=True, slots=True)
class Staged:
    """The release folder is complete; the link flip comes next."""


@dataclass(frozen=True, slots=True)
class StageFailed:
    """Unpacking or installing failed before the switch; nothing changed for the running release."""

    reason: str
    #: the bundle itself is bad (never retry this version); otherwise (disk full, ...) retry later
    permanent: bool = True


@dataclass(frozen=True, slots=True)
class Switched:
    """`current` now points at the target and the service was told to restart."""


@dataclass(frozen=True, slots=True)
class Observed:
    """One look at the service: `ready` = active (READY sent); `failed` = crashed or restarted since."""

    ready: bool
    failed: bool
    detail: str = ""
    #: False when systemd could not be asked (busy D-Bus): no news, neither good nor bad
    known: bool = True


@dataclass(frozen=True, slots=True)
class CrashLoop:
    """systemd gave up restarting the service (OnFailure= ran the rollback entry)."""

    detail: str = "the service crash-looped (systemd OnFailure)"


@dataclass(frozen=True, slots=True)
class RollbackRequested:
    """An operator asked to roll back."""

    reason: str = "rollback requested by an operator"


@dataclass(frozen=True, slots=True)
class CommitRequested:
    """An operator commits the trial release now."""


@dataclass(frozen=True, slots=True)
class RolledBack:
    """`current` points at the known-good release again and the service was restarted."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A bundle for `version` was refused before anything was unpacked (signature, hash, version)."""

    version: str
    reason: str


@dataclass(frozen=True, slots=True)
class ManifestSeen:
    """A verified fleet manifest with this serial was read."""

    serial: int


@dataclass(frozen=True, slots=True)
class Boot:
    """Start-up: `link` is the version `current` points at (None if missing or dangling)."""

    link: str | None


Event = (
    Begin
    | Staged
    | StageFailed
    | Switched
    | Observed
    | CrashLoop
    | RollbackRequested
    | CommitRequested
    | RolledBack
    | Rejected
    | ManifestSeen
    | Boot
)


def step(state: UpdateState, event: Event, now: float, settings: OtaSettings) -> UpdateState:
    """The state after `event` at `now`; an event that does not apply leaves the state unchanged."""
    phase = state.phase
    match event:
        case Begin(version, running) if phase is Phase.IDLE:
            known_good = running or state.known_good
            changes = {"target": version, "known_good": known_good, "reason": None, "trial_boots": 0}
            return _enter(state, Phase.STAGING, now, **changes)
        case Staged() if phase is Phase.STAGING:
            return _enter(state, Phase.SWITCHING, now)
        case StageFailed(reason, permanent) if phase is Phase.STAGING:
            return _finish(state, "failed", reason, now, permanent)
        case Switched() if phase is Phase.SWITCHING:
            return _enter(state, Phase.TRIAL, now)
        case Observed() if phase is Phase.TRIAL:
            return _observe(state, event, now, settings)
        case CrashLoop(detail) if phase is Phase.TRIAL:
            return _enter(state, Phase.ROLLING_BACK, now, reason=detail)
        case RollbackRequested(reason) if phase in (Phase.TRIAL, Phase.SWITCHING):
            return _enter(state, Phase.ROLLING_BACK, now, reason=reason)
        case CommitRequested() if phase is Phase.TRIAL:
            return _finish(state, "committed", "committed by an operator", now)
        case RolledBack() if phase is Phase.ROLLING_BACK:
            return _finish(state, "rolled_back", state.reason or "rolled back", now)
        case Rejected(version, reason) if phase is Phase.IDLE:
            return _finish(dataclasses.replace(state, target=version), "failed", reason, now)
        case ManifestSeen(serial) if serial > state.manifest_serial:
            return dataclasses.replace(state, manifest_serial=serial)
        case Boot(link):
            return _boot(state, link, now, settings)
    return state


def _observe(state: UpdateState, seen: Observed, now: float, settings: OtaSettings) -> UpdateState:
    if not seen.known:
        if state.ready_since is not None:
            return state  # a failed `systemctl show` must not undo a release that was READY
        seen = Observed(ready=False, failed=False, detail=seen.detail)
    if seen.failed:
        return _enter(state, Phase.ROLLING_BACK, now, reason=f"the new release failed: {seen.detail}")
    if seen.ready:
        ready_since = state.ready_since if state.ready_since is not None else now
        if now - ready_since >= settings.healthy_for_s:
            return _finish(state, "committed", f"healthy for {settings.healthy_for_s:.0f} s", now)
        return dataclasses.replace(state, ready_since=ready_since)
    if state.ready_since is not None:
        return _enter(state, Phase.ROLLING_BACK, now, reason=f"the new release left READY: {seen.detail}")
    if now - state.since >= settings.ready_timeout_s:
        reason = f"the new release did not reach READY within {settings.ready_timeout_s:.0f} s"
        return _enter(state, Phase.ROLLING_BACK, now, reason=f"{reason} ({seen.detail})")
    return state


def _boot(state: UpdateState, link: str | None, now: float, settings: OtaSettings) -> UpdateState:
    match state.phase:
        case Phase.IDLE:
            # deploy/install.sh (or a person) may have switched releases outside this updater: adopt it
            if link is not None and link != state.known_good:
                return dataclasses.replace(state, known_good=link)
            return state
        case Phase.STAGING:
            return _finish(state, "failed", "interrupted while unpacking (power cut or crash)", now, False)
        case Phase.SWITCHING if link == state.target:
            # the flip reached the disk: finish the switch by trying the new release
            return _enter(state, Phase.TRIAL, now, trial_boots=state.trial_boots + 1)
        case Phase.SWITCHING:
            return _finish(state, "failed", "interrupted before the switch (power cut or crash)", now, False)
        case Phase.TRIAL if link != state.target:
            return _enter(state, Phase.ROLLING_BACK, now, reason="current no longer points at the trial")
        case Phase.TRIAL if state.trial_boots + 1 > settings.max_trial_boots:
            reason = f"the box restarted {state.trial_boots + 1} times during the trial"
            return _enter(state, Phase.ROLLING_BACK, now, reason=reason)
        case Phase.TRIAL:
            # the trial starts over: time spent powered off proves nothing
            return _enter(state, Phase.TRIAL, now, trial_boots=state.trial_boots + 1)
        case Phase.ROLLING_BACK:
            return state
    raise AssertionError(state.phase)


def _enter(state: UpdateState, phase: Phase, now: float, **changes: Any) -> UpdateState:
    return dataclasses.replace(state, phase=phase, since=now, ready_since=None, **changes)


def _finish(
    state: UpdateState, result: Result, reason: str, now: float, permanent: bool = True
) -> UpdateState:
    """Back to IDLE with the outcome; a version that failed for good joins `failed` (not offered again)."""
    target = state.target or "?"
    outcome = Outcome(target, state.known_good, result, reason, now)
    known_good = target if result == "committed" else state.known_good
    failed = state.failed
    if result == "committed":
        failed = tuple(v for v in failed if v != target)
    elif permanent and target not in failed:
        failed = (*failed, target)[-MAX_FAILED:]
    return UpdateState(
        phase=Phase.IDLE,
        known_good=known_good,
        since=now,
        failed=failed,
        last=outcome,
        manifest_serial=state.manifest_serial,
    )


# --- persistence --------------------------------------------------------------------------------


def to_json(state: UpdateState) -> dict[str, Any]:
    """The JSON form of the state file."""
    raw = dataclasses.asdict(state)
    raw["phase"] = state.phase.value
    raw["failed"] = list(state.failed)
    return raw


def from_json(raw: dict[str, Any]) -> UpdateState:
    """Parse the state file; unknown keys are ignored so a newer release's file still reads."""
    last = raw.get("last")
    names = {f.name for f in dataclasses.fields(Outcome)}
    return UpdateState(
        phase=Phase(raw.get("phase", "idle")),
        known_good=raw.get("known_good"),
        target=raw.get("target"),
        since=float(raw.get("since", 0.0)),
        ready_since=raw.get("ready_since"),
        trial_boots=int(raw.get("trial_boots", 0)),
        reason=raw.get("reason"),
        failed=tuple(raw.get("failed", ())),
        last=Outcome(**{k: v for k, v in last.items() if k in names}) if isinstance(last, dict) else None,
        manifest_serial=_serial(raw.get("manifest_serial", 0)),
    )


def _serial(value: object) -> int:
    """A fleet-manifest serial as the manifest parser accepts it (a planted 1e15 is not one)."""
    if type(value) is not int or not 0 <= value <= 2**31 - 1:
        raise ValueError(f"manifest_serial {value!r} is not a whole number from 0 to 2^31-1")
    return value


def summary(state: UpdateState, what: str) -> tuple[str, int]:
    """The one line a command prints about `state` (`what`: "update" or "OS update") and its exit status."""
    last = state.last
    if state.updating:
        return f"{what} to {state.target}: {state.phase}", 0
    if last is None:
        return f"no {what} has run on this box", 0
    return f"{what} to {last.version}: {last.result} ({last.reason})", 0 if last.result == "committed" else 1
