"""An in-force event that vanishes from a fully read DERControlList is cancelled; a partial read never is."""

from __future__ import annotations

import dataclasses
import random

from app.control.model import EventRecord, Plan, ProgramControls
from app.control.schedule import evaluate
from app.control.vanished import VanishedEvents
from app.sep.der import DERControlBase
from tests.control.builders import at, control, program

DEFAULT = DERControlBase(opModFixedW=1000)
EVENT = control("A1", 100, 60, fixed=5000)


class Run:
    def __init__(self) -> None:
        self.records: dict[str, EventRecord] = {}
        self.vanished = VanishedEvents()
        self.rng = random.Random(1)
        self.sent: list[tuple[str, int]] = []

    def at(self, t: float, prog: ProgramControls) -> Plan:
        programs = self.vanished.programs([prog], self.records)
        plan = evaluate(programs, self.records, at(t), self.rng)
        for record in plan.records:
            self.records[record.mrid] = record
        self.sent += [(r.mrid, r.status) for r in plan.responses]
        return plan


def test_vanished_from_a_full_list_while_in_force_is_cancelled_back_to_the_default() -> None:
    run = Run()
    assert run.at(110, program(1, EVENT, default=DEFAULT)).in_force == {"W": "A1"}
    plan = run.at(120, program(1, default=DEFAULT))
    assert plan.in_force == {}
    assert plan.power is not None and plan.power.source == "default"
    assert run.sent == [("A1", 1), ("A1", 2), ("A1", 6)]
    # once cancelled it stays so, and is not answered again
    run.at(130, program(1, default=DEFAULT))
    assert run.sent.count(("A1", 6)) == 1


def test_a_partly_read_list_never_cancels() -> None:
    run = Run()
    run.at(110, program(1, EVENT, default=DEFAULT))
    partial = dataclasses.replace(program(1, default=DEFAULT), controls_complete=False)
    # not in this read, which was cut short: still in force as last listed, not cancelled
    assert run.at(120, partial).in_force == {"W": "A1"}
    assert ("A1", 6) not in run.sent
    assert run.records["A1"].terminal is None
    # listed again in full: still in force
    assert run.at(130, program(1, EVENT, default=DEFAULT)).in_force == {"W": "A1"}
    # ...and a full list without it, later, does cancel it (it was remembered through the partial read)
    assert run.at(131, partial).in_force == {"W": "A1"}
    assert run.at(140, program(1, default=DEFAULT)).in_force == {}
    assert ("A1", 6) in run.sent


def test_a_scheduled_event_that_vanishes_is_not_answered_as_cancelled() -> None:
    run = Run()
    run.at(50, program(1, EVENT, default=DEFAULT))
    run.at(60, program(1, default=DEFAULT))
    assert run.sent == [("A1", 1)]
