"""Which DERControlBase modes the battery can obey, and the power command they ask for."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from app.sep.der import DefaultDERControl, DERControlBase
from app.sep.response import ResponseStatus

#: fixedW and targetW both set the one active-power setpoint of a battery, so for supersession
#: (2030.5-2018 §12.1.3.1, per control mode) they are one mode: a newer targetW replaces a fixedW.
POWER: Final = "W"
_CATEGORY: Final = {"opModFixedW": POWER, "opModTargetW": POWER}
# connect/energize = true is the inverter's normal state: obeyed by doing nothing, and (as py20305
# and CSIP do) left out of supersession so they never keep a superseded event alive.
_NOOP_WHEN_TRUE: Final = frozenset({"opModConnect", "opModEnergize"})
_NOT_A_MODE: Final = frozenset({"rampTms"})
_MODES: Final = tuple(f.name for f in dataclasses.fields(DERControlBase) if f.name not in _NOT_A_MODE)


#: the PowerCommand source of a DefaultDERControl (an event's is its mRID)
DEFAULT_SOURCE: Final = "default"


#: DeviceCategoryType bits that describe this gateway's battery: 18 virtual or mixed DER,
#: 23 combined PV and storage, 25 other storage system.
OUR_DEVICE_CATEGORIES: Final = (1 << 18) | (1 << 23) | (1 << 25)


def addressed_to_us(device_category: int | None) -> bool:
    """sep.xsd DERControl.deviceCategory: devices SHOULD ignore events not naming their category."""
    # Absent means every device; an all-zero bitmap names nobody, which we read as a server slip.
    return not device_category or bool(device_category & OUR_DEVICE_CATEGORIES)


@dataclass(frozen=True, slots=True)
class PowerCommand:
    """What the battery is asked to do: `fixed_w` (hundredths of a percent) or `target_w` (W)."""

    source: str
    """The event's mRID, or "default" for a DefaultDERControl."""
    fixed_w: int | None = None
    target_w: float | None = None
    ramp_s: float | None = None
    """rampTms of the event: reach the new setpoint linearly over this many seconds."""
    grad_pct_per_s: float | None = None
    """setGradW of the default control: the rate limit (percent of setMaxW per second) otherwise."""


def classify(base: DERControlBase) -> tuple[ResponseStatus | None, frozenset[str]]:
    """(rejection status or None, the supersession categories) of an event's modes."""
    present = [name for name in _MODES if getattr(base, name) is not None]
    if not present:
        return ResponseStatus.REJECTED_INVALID, frozenset()  # an event that asks for nothing
    if base.opModFixedW is not None and base.opModTargetW is not None:
        return ResponseStatus.REJECTED_INVALID, frozenset()  # two setpoints for one battery
    for name in present:
        if name in _NOOP_WHEN_TRUE:
            if getattr(base, name) is False:
                return ResponseStatus.REJECTED_NOT_APPLICABLE, frozenset()
        elif name not in _CATEGORY:
            return ResponseStatus.REJECTED_NOT_APPLICABLE, frozenset()
    categories = frozenset(_CATEGORY[name] for name in present if name in _CATEGORY)
    if not categories:
        # Only connect/energize = true: nothing to execute and nothing it could supersede.
        return ResponseStatus.REJECTED_NOT_APPLICABLE, frozenset()
    return None, categories


def event_command(mrid: str, base: DERControlBase, grad: float | None) -> PowerCommand:
    """The power command of an accepted event (classify() said it is applicable)."""
    ramp = base.rampTms / 100.0 if base.rampTms else None
    target = base.opModTargetW.watts if base.opModTargetW is not None else None
    return PowerCommand(mrid, base.opModFixedW, target, ramp, grad)


def default_command(default: DefaultDERControl) -> PowerCommand | None:
    """The power command of a DefaultDERControl, or None when it sets no active power."""
    base = default.DERControlBase
    grad = default_grad(default)
    ramp = base.rampTms / 100.0 if base.rampTms else None
    if base.opModFixedW is not None:
        return PowerCommand(DEFAULT_SOURCE, base.opModFixedW, None, ramp, grad)
    if base.opModTargetW is not None:
        return PowerCommand(DEFAULT_SOURCE, None, base.opModTargetW.watts, ramp, grad)
    return None


def default_grad(default: DefaultDERControl | None) -> float | None:
    """setGradW as percent of setMaxW per second; None when absent or 0 (= no limit)."""
    if default is None or not default.setGradW:
        return None
    return default.setGradW / 100.0
