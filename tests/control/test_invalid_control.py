"""One invalid DERControl in a list is rejected alone (253); every other control applies."""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path

import pytest

from app.control.engine import ControlEngine
from app.control.model import EventRecord
from app.control.schedule import Phase, ProgramControls, evaluate
from app.sep import parse, to_xml
from app.sep.der import DERControl, DERControlBase, DERControlList, InvalidDERControl
from app.sep.response import ResponseStatus
from tests.control.builders import at, control, program
from tests.control.fakes import FakeServer, RecordingInverter, wait_until
from tests.control.test_engine import LFDI, SPEC, make_config, now_s, running

INVALID = ResponseStatus.REJECTED_INVALID
VALID = control("AA01", 0, 3600, fixed=5000)  # in force for the first hour
# hours away and out of range: SignedPerCent is -10000..10000
BAD = control("BB02", 3 * 3600, 600, base=DERControlBase(opModFixedW=20000))
OUT_OF_RANGE = "DERControlBase.opModFixedW: expected an integer in -10000..10000, got '20000'"


def served(*controls: DERControl, edit: tuple[bytes, bytes] = (b"", b"")) -> tuple[DERControl, ...]:
    """The controls as the gateway reads them: a DERControlList on the wire, parsed."""
    body = to_xml(DERControlList(all=len(controls), results=len(controls), DERControl=controls))
    if edit[0]:
        assert body.count(edit[0]) == 1
        body = body.replace(*edit)
    return parse(DERControlList, body).DERControl


@pytest.mark.parametrize(
    ("required", "answers"),
    [(0x03, [1, INVALID]), (0x02, [INVALID]), (0x01, [1]), (0x00, [])],
)
def test_the_valid_event_applies_and_the_invalid_one_is_answered_253(
    required: int, answers: list[int]
) -> None:
    valid, bad = served(VALID, replace(BAD, responseRequired=required))
    assert isinstance(bad, InvalidDERControl)
    records: dict[str, EventRecord] = {}
    plan = evaluate([program(1, valid, bad)], records, at(60), random.Random(1))
    assert plan.power is not None and (plan.power.source, plan.power.fixed_w) == ("AA01", 5000)
    assert plan.in_force == {"W": "AA01"}
    state = plan.states["BB02"]
    assert (state.phase, state.code, state.problem) == (Phase.REJECTED, INVALID, OUT_OF_RANGE)
    assert [r.status for r in plan.responses if r.mrid == "BB02"] == answers
    assert [r.status for r in plan.responses if r.mrid == "AA01"] == [1, 2]
    # the next poll brings the same list, parsed anew: nothing new to say about either
    records.update((r.mrid, r) for r in plan.records)
    again = evaluate(
        [program(1, *served(VALID, replace(BAD, responseRequired=required)))],
        records,
        at(70),
        random.Random(2),
    )
    assert again.responses == () and again.records == ()
    assert again.power == plan.power


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            (b"<duration>600<", b"<duration>-600<"),
            "interval.duration: expected an integer in 0..4294967295, got '-600'",
        ),
        ((b"<opModFixedW>1000<", b"<opModFixedW>lots<"), "DERControlBase.opModFixedW: expected an integer"),
        ((b"<opModFixedW>1000</opModFixedW>", b"<opModFutureW>1</opModFutureW>"), None),  # unknown mode only
    ],
    ids=["negative-duration", "malformed-value", "unknown-mode-only"],
)
def test_each_kind_of_invalid_control_is_rejected_alone(
    edit: tuple[bytes, bytes], problem: str | None
) -> None:
    valid, bad = served(VALID, control("BB02", 3 * 3600, 600, fixed=1000), edit=edit)
    plan = evaluate([program(1, valid, bad)], {}, at(60), random.Random(1))
    assert plan.power is not None and plan.power.source == "AA01"
    state = plan.states["BB02"]
    assert (state.phase, state.code) == (Phase.REJECTED, INVALID)
    assert (state.problem or "").startswith(problem or "") and (state.problem is None) == (problem is None)
    assert [r.status for r in plan.responses if r.mrid == "BB02"] == [1, INVALID]


def test_an_invalid_control_supersedes_nothing() -> None:
    # higher priority, newer and overlapping the valid event: were it valid, it would take over
    clash = control("BB02", 0, 600, created=30, base=DERControlBase(opModFixedW=-20000))
    valid, bad = served(VALID, clash)
    programs = [program(0, bad), program(1, valid)]
    records: dict[str, EventRecord] = {}
    for t in (60, 300, 3600):
        plan = evaluate(programs, records, at(t), random.Random(1))
        records.update((r.mrid, r) for r in plan.records)
        if t < 3600:
            assert plan.power is not None and plan.power.source == "AA01"
    assert plan.states["AA01"].phase is Phase.COMPLETED
    assert records["AA01"].reached == {1, 2, 3}  # never superseded (7)


@pytest.mark.parametrize("invalid_first", [True, False])
def test_a_valid_control_of_the_same_mrid_wins(invalid_first: bool) -> None:
    (bad,) = served(replace(BAD, mRID="AA01", interval=VALID.interval))
    (valid,) = served(VALID)
    programs = [program(0, bad), program(1, valid)] if invalid_first else [program(1, valid, bad)]
    plan = evaluate(programs, {}, at(60), random.Random(1))
    assert plan.power is not None and plan.power.source == "AA01"
    assert [r.status for r in plan.responses] == [1, 2]
    assert plan.states["AA01"].problem is None


def test_an_event_that_turns_invalid_stops_and_is_answered_253() -> None:
    (valid,) = served(VALID)
    plan = evaluate([program(1, valid)], {}, at(60), random.Random(1))
    records = {r.mrid: r for r in plan.records}
    assert plan.power is not None and records["AA01"].reached == {1, 2}
    (turned,) = served(replace(VALID, DERControlBase=DERControlBase(opModFixedW=20000)))
    plan = evaluate([program(1, turned)], records, at(120), random.Random(1))
    assert plan.power is None and plan.in_force == {}
    assert [(r.mrid, r.status) for r in plan.responses] == [("AA01", INVALID)]


def test_a_stand_in_never_runs_whatever_its_base_says() -> None:
    # not something the codec builds, but the scheduler must not depend on the empty base alone
    forged = InvalidDERControl(
        mRID="CC03",
        replyTo=VALID.replyTo,
        responseRequired=0x03,
        creationTime=at(0),
        EventStatus=VALID.EventStatus,
        interval=VALID.interval,
        DERControlBase=DERControlBase(opModFixedW=5000),
        problem="forged",
    )
    plan = evaluate([program(1, forged)], {}, at(60), random.Random(1))
    assert plan.power is None and plan.in_force == {}
    assert [r.status for r in plan.responses] == [1, INVALID]


async def polled(engine: ControlEngine, programs: list[ProgramControls]) -> None:
    """Feed the engine one poll of `programs` and wait until it has evaluated it."""
    before = engine.plan
    engine.update(programs)
    await wait_until(lambda: engine.plan is not before)


async def test_the_reason_is_logged_once_per_mrid(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path)
    valid = control("AA01", now_s(-1), 3600, fixed=5000)
    bad = control("BB02", now_s(3 * 3600), 600, base=DERControlBase(opModFixedW=20000))
    with caplog.at_level(logging.INFO, logger="app.control.engine"):
        for _restart in range(2):  # the ledger keeps what was reached, so a restart says nothing again
            engine = ControlEngine(config, RecordingInverter(SPEC), FakeServer(), LFDI, rng=random.Random(1))
            async with running(engine):
                for _poll in range(3):  # the same list, parsed anew each time
                    await polled(engine, [program(1, *served(valid, bad))])
                assert engine.setpoint == 2500.0
            assert engine.plan is not None and engine.plan.states["BB02"].code == INVALID
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"event BB02: rejected: invalid, {OUT_OF_RANGE}"]
