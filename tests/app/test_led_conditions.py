"""The LED's priorities, decided from conditions and kinds alone (no gateway, no error text)."""

from __future__ import annotations

import pytest

from app.commissioning.led import Conditions, led_state
from app.health import Kind
from hal.gpio import LedState

WELL = Conditions(registered=True)


@pytest.mark.parametrize(
    ("conditions", "led"),
    [
        (WELL, LedState.OK),
        (Conditions(), LedState.BOOTING),
        (Conditions(registered=False), LedState.NOT_REGISTERED),
        (Conditions(registered=True, server_problem=Kind.NOT_REGISTERED), LedState.NOT_REGISTERED),
        (Conditions(registered=True, server_problem=Kind.NETWORK), LedState.NO_NETWORK),
        (Conditions(registered=True, server_problem=Kind.SERVER), LedState.NO_SERVER),
        (Conditions(registered=True, server_problem=Kind.CERTIFICATE), LedState.NO_SERVER),
        (Conditions(registered=True, server_problem=Kind.SOFTWARE), LedState.NO_SERVER),
        (Conditions(registered=True, inverter_failing=True), LedState.NO_INVERTER),
        (Conditions(registered=True, attention=True), LedState.ATTENTION),
        (Conditions(registered=True, fault=True, updating=True), LedState.FAULT),
        (Conditions(registered=True, updating=True, inverter_failing=True), LedState.UPDATING),
        # not commissioned: the server's states would only mislead
        (Conditions(not_commissioned=True, server_problem=Kind.NETWORK), LedState.NOT_COMMISSIONED),
        (Conditions(not_commissioned=True, commissioning=True), LedState.COMMISSIONING),
    ],
)
def test_the_led_shows_the_highest_condition_that_holds(conditions: Conditions, led: LedState) -> None:
    assert led_state(conditions) is led


def test_every_kind_of_server_problem_lights_a_server_state() -> None:
    server_states = {LedState.NOT_REGISTERED, LedState.NO_NETWORK, LedState.NO_SERVER}
    for kind in Kind:
        assert led_state(Conditions(registered=True, server_problem=kind)) in server_states
