"""Which condition the status LED shows: the highest-priority one that holds, decided from kinds."""

from __future__ import annotations

from dataclasses import dataclass

from app.health import Kind
from hal.gpio import LedState, highest


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the LED decides from (no words: the server's problem is its kind)."""

    #: a part restarted again and again, or the certificate in force has expired
    fault: bool = False
    #: something the box still needs before it may drive the battery (its other states would mislead)
    not_commissioned: bool = False
    commissioning: bool = False
    updating: bool = False
    #: the kind of the server session's problem (None: none)
    server_problem: Kind | None = None
    #: whether the server lists our EndDevice (None: nothing read yet)
    registered: bool | None = None
    inverter_failing: bool = False
    #: any problem at all, a certificate to renew, or inverter data not trusted
    attention: bool = False


def led_state(c: Conditions) -> LedState:
    """The highest-priority condition that holds."""
    holds: set[LedState] = set()
    if c.fault:
        holds.add(LedState.FAULT)
    if c.not_commissioned and not c.commissioning:
        holds.add(LedState.NOT_COMMISSIONED)
    if c.updating:
        holds.add(LedState.UPDATING)
    if c.not_commissioned:
        pass  # the server is not even tried: its states would only mislead
    elif c.server_problem is Kind.NOT_REGISTERED:
        holds.add(LedState.NOT_REGISTERED)  # 401/403: the utility does not know our LFDI
    elif c.server_problem is Kind.NETWORK:
        holds.add(LedState.NO_NETWORK)
    elif c.server_problem is not None:
        holds.add(LedState.NO_SERVER)
    elif c.registered is None:
        holds.add(LedState.BOOTING)
    elif not c.registered:
        holds.add(LedState.NOT_REGISTERED)
    if c.inverter_failing:
        holds.add(LedState.NO_INVERTER)
    if c.commissioning:
        holds.add(LedState.COMMISSIONING)
    if c.attention:
        holds.add(LedState.ATTENTION)
    return highest(holds)
