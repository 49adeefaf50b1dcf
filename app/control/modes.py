"""Which DERControlBase modes the battery can obey, and the power command they ask for."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from app.sep.der import DefaultDERControl, DERControlBase
from app.sep.response import ResponseStatus

#: fixedW and targetW both set the one active-power setpoint of a battery, so for supersession
#: (2030.5-2018 §12.1.3.1, per control mode) they are one mode: a newer targetW replaces a fixedW.
POWER: Final = "W"
#: opModMaxLimW: a cap on |W|, superseded on its own (a newer setpoint leaves an older cap in force)
MAX_LIMIT: Final = "MaxLimW"
#: opModConnect / opModEnergize = false: the battery stops exchanging power
CONNECT: Final = "Connect"
ENERGIZE: Final = "Energize"
#: CSIP-AUS limits (watts), each a mode of its own: export/generation cap discharge, import/load charge
DISCHARGE_LIMITS: Final = {"ExpLimW": "opModExpLimW", "GenLimW": "opModGenLimW"}
CHARGE_LIMITS: Final = {"ImpLimW": "opModImpLimW", "LoadLimW": "opModLoadLimW"}
_CATEGORY: Final = {
    "opModFixedW": POWER,
    "opModTargetW": POWER,
    "opModMaxLimW": MAX_LIMIT,
    **{name: mode for mode, name in (DISCHARGE_LIMITS | CHARGE_LIMITS).items()},
}
# connect/energize = true is the inverter's normal state: obeyed by doing nothing, and (as py20305
# and CSIP do) left out of supersession so they never keep a superseded event alive. False is a
# mode of its own (cease to exchange power), superseded per mode like the others.
_NOOP_WHEN_TRUE: Final = {"opModConnect": CONNECT, "opModEnergize": ENERGIZE}
#: the modes a PowerCommand is combined from, each from the control in force for it
MODES_IN_COMMAND: Final = (POWER, MAX_LIMIT, CONNECT, ENERGIZE, *DISCHARGE_LIMITS, *CHARGE_LIMITS)
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
    """What the battery is asked to do: a setpoint (`fixed_w`, hundredths of a percent, or `target_w`,
    W), a cap on |W| (`max_limit`, hundredths of a percent of setMaxW), or to stop exchanging power."""

    source: str
    """The setpoint's event mRID (else the first limit's), or "default" for a DefaultDERControl."""
    fixed_w: int | None = None
    target_w: float | None = None
    ramp_s: float | None = None
    """rampTms of the event: reach the new setpoint linearly over this many seconds."""
    grad_pct_per_s: float | None = None
    """setGradW of the default control: the rate limit (percent of setMaxW per second) otherwise."""
    max_limit: int | None = None
    """opModMaxLimW: |W| at most this share of setMaxW (hundredths of a percent)."""
    cease: bool = False
    """opModConnect or opModEnergize false: hold the battery at 0 W whatever else is asked."""
    discharge_cap_w: float | None = None
    """CSIP-AUS opModExpLimW / opModGenLimW (the smaller): discharge at most this many watts."""
    charge_cap_w: float | None = None
    """CSIP-AUS opModImpLimW / opModLoadLimW (the smaller): charge at most this many watts."""
    export_limit_w: float | None = None
    """opModExpLimW alone (in `discharge_cap_w` too): a site meter holds it at the connection point."""
    generation_limit_w: float | None = None
    """opModGenLimW alone (in `discharge_cap_w` too): always held at the battery."""
    import_limit_w: float | None = None
    """opModImpLimW alone (in `charge_cap_w` too): a site meter holds it at the connection point."""
    load_limit_w: float | None = None
    """opModLoadLimW alone (in `charge_cap_w` too): always held at the battery."""

    def __post_init__(self) -> None:
        if self.fixed_w is not None and self.target_w is not None:
            raise ValueError("a PowerCommand has one setpoint: fixed_w or target_w")
        if self.max_limit is not None and not 0 <= self.max_limit <= 10000:
            raise ValueError(f"max_limit {self.max_limit} is not a PerCent (0..10000)")

    @property
    def has_setpoint(self) -> bool:
        """True when it asks for a power (fixedW, targetW or cease), not only a cap."""
        return self.cease or self.fixed_w is not None or self.target_w is not None


def classify(base: DERControlBase) -> tuple[ResponseStatus | None, frozenset[str]]:
    """(rejection status or None, the supersession categories) of an event's modes."""
    status, categories, _ = classify_modes(base)
    return status, categories


def classify_modes(base: DERControlBase) -> tuple[ResponseStatus | None, frozenset[str], tuple[str, ...]]:
    """(rejection status or None, supersession categories, the modes present that we do not apply).

    2030.5 §12.1.3: a control is applied for the modes the battery supports; only a control with
    none of them is rejected (252), and one that asks for nothing or contradicts itself is invalid.
    """
    present = [name for name in _MODES if getattr(base, name) is not None]
    if not present:
        return ResponseStatus.REJECTED_INVALID, frozenset(), ()  # an event that asks for nothing
    if base.opModFixedW is not None and base.opModTargetW is not None:
        return ResponseStatus.REJECTED_INVALID, frozenset(), ()  # two setpoints for one battery
    categories: set[str] = set()
    ignored: list[str] = []
    for name in present:
        if name in _NOOP_WHEN_TRUE:
            if getattr(base, name) is False:
                categories.add(_NOOP_WHEN_TRUE[name])
        elif name in _CATEGORY:
            categories.add(_CATEGORY[name])
        else:
            ignored.append(name)
    if not categories:
        # Only unsupported modes, or only connect/energize = true (nothing to execute, nothing
        # it could supersede).
        return ResponseStatus.REJECTED_NOT_APPLICABLE, frozenset(), tuple(ignored)
    return None, frozenset(categories), tuple(ignored)


def combine(by_mode: Mapping[str, tuple[str, DERControlBase]], grad: float | None) -> PowerCommand | None:
    """One command from the control in force for each mode (mode -> (source, its DERControlBase)).

    None when no mode sets anything the battery does (release it to its own mode).
    """
    fixed: int | None = None
    target: float | None = None
    ramp: float | None = None
    sources: list[str] = []
    power = by_mode.get(POWER)
    if power is not None:
        source, base = power
        if base.opModFixedW is not None:
            fixed = base.opModFixedW
        elif base.opModTargetW is not None:
            target = base.opModTargetW.watts
        if fixed is not None or target is not None:
            sources.append(source)
            ramp = base.rampTms / 100.0 if base.rampTms else None
    limit: int | None = None
    if MAX_LIMIT in by_mode:
        source, base = by_mode[MAX_LIMIT]
        limit = base.opModMaxLimW
        if limit is not None:
            sources.append(source)
    ceasing = [
        by_mode[mode][0]
        for mode, name in ((CONNECT, "opModConnect"), (ENERGIZE, "opModEnergize"))
        if mode in by_mode and getattr(by_mode[mode][1], name) is False
    ]
    cease = bool(ceasing)
    sources = ceasing + sources  # ceasing wins over any setpoint: its event is the source
    caps: list[float | None] = []
    each: dict[str, float] = {}
    for modes in (DISCHARGE_LIMITS, CHARGE_LIMITS):
        found: list[float] = []
        for mode, name in modes.items():
            if mode in by_mode:
                value = getattr(by_mode[mode][1], name)
                if value is not None:
                    found.append(max(0.0, value.watts))  # a negative limit cannot be met by a battery cap
                    each[mode] = found[-1]
                    sources.append(by_mode[mode][0])
        caps.append(min(found) if found else None)
    if not sources:
        return None
    return PowerCommand(
        sources[0],
        fixed,
        target,
        ramp,
        grad,
        max_limit=limit,
        cease=cease,
        discharge_cap_w=caps[0],
        charge_cap_w=caps[1],
        export_limit_w=each.get("ExpLimW"),
        generation_limit_w=each.get("GenLimW"),
        import_limit_w=each.get("ImpLimW"),
        load_limit_w=each.get("LoadLimW"),
    )


def default_command(default: DefaultDERControl) -> PowerCommand | None:
    """The power command of a DefaultDERControl, or None when it sets nothing the battery does."""
    base = default.DERControlBase
    grad = default_grad(default)
    return combine(dict.fromkeys(MODES_IN_COMMAND, (DEFAULT_SOURCE, base)), grad)


def default_grad(default: DefaultDERControl | None) -> float | None:
    """setGradW as percent of setMaxW per second; None when absent or 0 (= no limit)."""
    if default is None or not default.setGradW:
        return None
    return default.setGradW / 100.0
