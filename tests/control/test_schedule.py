"""Table-driven tests of the pure scheduler over literal times and a seeded generator."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from app.control.schedule import EventRecord, Phase, Plan, ProgramControls, evaluate
from app.sep.der import DERControlBase
from app.sep.types import ActivePower, FixedVar
from tests.control.builders import T0, at, control, program

Programs = Sequence[ProgramControls]


class Runner:
    """Evaluates at successive literal times, carrying the records forward as the engine does."""

    def __init__(self, seed: int = 7) -> None:
        self.records: dict[str, EventRecord] = {}
        self.rng = random.Random(seed)
        self.sent: list[tuple[float, str, int]] = []
        self.plans: dict[float, Plan] = {}

    def at(self, t: float, programs: Programs) -> Plan:
        plan = evaluate(programs, self.records, at(t), self.rng)
        for record in plan.records:
            self.records[record.mrid] = record
        self.sent += [(t, r.mrid, r.status) for r in plan.responses]
        self.plans[t] = plan
        return plan


def source(plan: Plan) -> str | None:
    return None if plan.power is None else plan.power.source


@dataclass
class Case:
    name: str
    steps: list[tuple[float, Programs]]
    responses: list[tuple[float, str, int]]
    power: dict[float, str | None] = field(default_factory=dict)
    phases: dict[str, Phase] = field(default_factory=dict)


def steady(programs: Programs, *times: float) -> list[tuple[float, Programs]]:
    return [(t, programs) for t in times]


A = control("A1", 100, 60, fixed=5000)
VAR = FixedVar(refType=1, value=10)
A_CANCELLED = control("A1", 100, 60, fixed=5000, status=2)
A_SUPERSEDED = control("A1", 100, 60, fixed=5000, status=4)
B_NEXT = control("B1", 160, 60, target=(-2000, 0))
P_GAP = program(1, A, B_NEXT, default=DERControlBase(opModFixedW=1000))
HIGH = control("C1", 100, 100, target=(-20, 2))
LOW = control("C2", 150, 100, fixed=3000)
OLD = control("D1", 100, 100, fixed=1000, created=0)
NEW = control("D2", 120, 100, target=(5, 3), created=10)
OUTER = control("L1", 100, 200, fixed=1000)
INNER = control("H1", 150, 50, target=(1, 3))
INNER_CANCELLED = control("H1", 150, 50, target=(1, 3), status=2)

CASES = [
    Case(
        "start and end",
        steady([program(1, A)], 0, 99, 100, 159, 160),
        [(0, "A1", 1), (100, "A1", 2), (160, "A1", 3)],
        {99: None, 100: "A1", 159: "A1", 160: None},
        {"A1": Phase.COMPLETED},
    ),
    Case(
        "back-to-back events do not overlap, default control in the gap after them",
        steady([P_GAP], 0, 100, 160, 220),
        [(0, "A1", 1), (0, "B1", 1), (100, "A1", 2), (160, "A1", 3), (160, "B1", 2), (220, "B1", 3)],
        {0: "default", 100: "A1", 160: "B1", 220: "default"},
    ),
    Case(
        "lower primacy number wins across programs; supersession is per mode (fixedW vs targetW)",
        steady([program(2, LOW), program(1, HIGH)], 0, 100, 150, 200, 250),
        [(0, "C2", 1), (0, "C1", 1), (100, "C1", 2), (150, "C2", 7), (200, "C1", 3)],
        {100: "C1", 150: "C1", 200: None},
        {"C2": Phase.SUPERSEDED},
    ),
    Case(
        "a higher-priority arrival supersedes an active event at once",
        [(0, [program(2, LOW)]), (150, [program(2, LOW)]), (160, [program(2, LOW), program(1, HIGH)])],
        [(0, "C2", 1), (150, "C2", 2), (160, "C2", 7), (160, "C1", 1), (160, "C1", 2)],
        {150: "C2", 160: "C1"},
    ),
    Case(
        "equal primacy: the newer creationTime wins, taking over at its start",
        steady([program(1, OLD, NEW)], 0, 100, 120),
        [(0, "D1", 1), (0, "D2", 1), (100, "D1", 2), (120, "D1", 7), (120, "D2", 2)],
        {100: "D1", 120: "D2"},
    ),
    Case(
        "equal primacy in two programs: still the newer creationTime",
        steady([program(1, NEW, mrid="AA"), program(1, OLD, mrid="BB")], 0, 100, 120),
        [(0, "D2", 1), (0, "D1", 1), (100, "D1", 2), (120, "D2", 2), (120, "D1", 7)],
    ),
    Case(
        "a nested higher-priority event ends the lower one for good",
        steady([program(2, OUTER), program(1, INNER)], 0, 100, 150, 200, 300),
        [(0, "L1", 1), (0, "H1", 1), (100, "L1", 2), (150, "L1", 7), (150, "H1", 2), (200, "H1", 3)],
        {100: "L1", 150: "H1", 200: None, 300: None},
    ),
    Case(
        "a newcomer cancelled before it takes over supersedes nothing",
        [
            (0, [program(2, OUTER), program(1, INNER)]),
            (100, [program(2, OUTER), program(1, INNER)]),
            (120, [program(2, OUTER), program(1, INNER_CANCELLED)]),
            (150, [program(2, OUTER), program(1, INNER_CANCELLED)]),
            (300, [program(2, OUTER), program(1, INNER_CANCELLED)]),
        ],
        [(0, "L1", 1), (0, "H1", 1), (100, "L1", 2), (120, "H1", 6), (300, "L1", 3)],
        {150: "L1", 300: None},
    ),
    Case(
        "a rejected mode never supersedes anything",
        steady(
            [program(1, A), program(0, control("V1", 100, 60, base=DERControlBase(opModFixedVar=VAR)))],
            0,
            100,
        ),
        [(0, "A1", 1), (0, "V1", 1), (0, "V1", 252), (100, "A1", 2)],
        {100: "A1"},
    ),
    Case(
        "supersession is per mode: a higher-priority cap leaves the setpoint in force",
        steady(
            [program(1, A), program(0, control("V1", 100, 60, base=DERControlBase(opModMaxLimW=5000)))],
            0,
            100,
        ),
        [(0, "A1", 1), (0, "V1", 1), (100, "A1", 2), (100, "V1", 2)],
        {100: "A1"},
    ),
    Case(
        "a newer cap supersedes an older cap, not the setpoint",
        steady(
            [
                program(
                    1,
                    control("M1", 100, 60, base=DERControlBase(opModMaxLimW=5000, opModFixedW=4000)),
                    control("M2", 120, 60, created=1, base=DERControlBase(opModMaxLimW=2000)),
                )
            ],
            100,
            120,
            160,
        ),
        [(100, "M1", 1), (100, "M1", 2), (100, "M2", 1), (120, "M2", 2), (160, "M1", 3)],
        {100: "M1", 120: "M1", 160: "M2"},
    ),
    Case(
        "a partly supported control is applied for what the battery does",
        steady(
            [program(1, control("P1", 100, 60, base=DERControlBase(opModFixedW=100, opModFixedVar=VAR)))], 100
        ),
        [(100, "P1", 1), (100, "P1", 2)],
        {100: "P1"},
    ),
    Case(
        "cancelled while scheduled",
        [(0, [program(1, A)]), (50, [program(1, A_CANCELLED)]), (100, [])],
        [(0, "A1", 1), (50, "A1", 6)],
        {100: None},
        {},
    ),
    Case(
        "cancelled while active stops at once",
        [
            (0, [program(1, A)]),
            (100, [program(1, A)]),
            (120, [program(1, control("A1", 100, 60, fixed=5000, status=2))]),
        ],
        [(0, "A1", 1), (100, "A1", 2), (120, "A1", 6)],
        {100: "A1", 120: None},
        {"A1": Phase.CANCELLED},
    ),
    Case(
        "server-side superseded (status 4) stops at once with 7",
        [
            (0, [program(1, A)]),
            (100, [program(1, A)]),
            (110, [program(1, control("A1", 100, 60, fixed=5000, status=4))]),
        ],
        [(0, "A1", 1), (100, "A1", 2), (110, "A1", 7)],
        {110: None},
    ),
    Case(
        "expired on arrival: 254, never applied",
        steady([program(1, A)], 160, 170),
        [(160, "A1", 1), (160, "A1", 254)],
        {160: None},
        {"A1": Phase.REJECTED},
    ),
    Case(
        "unsupported modes are not applicable (252)",
        steady(
            [
                program(
                    1,
                    control("U1", 100, 60, base=DERControlBase(opModFixedVar=VAR)),
                    control("U3", 100, 60, base=DERControlBase(opModConnect=True)),
                )
            ],
            0,
            100,
        ),
        [(0, "U1", 1), (0, "U1", 252), (0, "U3", 1), (0, "U3", 252)],
        {100: None},
    ),
    Case(
        "connect or energize false is obeyed: the battery ceases to exchange power",
        steady(
            [
                program(
                    1,
                    control("U2", 100, 60, base=DERControlBase(opModConnect=False)),
                    control("U4", 100, 30, base=DERControlBase(opModEnergize=False)),
                )
            ],
            0,
            100,
        ),
        [(0, "U2", 1), (0, "U4", 1), (100, "U2", 2), (100, "U4", 2)],
        {100: "U2"},
    ),
    Case(
        "invalid events (253): two setpoints, no modes, no duration",
        steady(
            [
                program(
                    1,
                    control("I1", 100, 60, fixed=100, target=(100, 0)),
                    control("I2", 100, 60),
                    control("I3", 100, 0, fixed=100),
                )
            ],
            0,
        ),
        [(0, "I1", 1), (0, "I1", 253), (0, "I2", 1), (0, "I2", 253), (0, "I3", 1), (0, "I3", 253)],
    ),
    Case(
        "connect=true alongside a setpoint is obeyed by doing nothing",
        steady(
            [program(1, control("K1", 100, 60, base=DERControlBase(opModConnect=True, opModFixedW=100)))],
            100,
        ),
        [(100, "K1", 1), (100, "K1", 2)],
        {100: "K1"},
    ),
    Case(
        "responseRequired gates: 0 none, 1 only received, 2 only the specific ones",
        steady(
            [
                program(
                    1,
                    control("R0", 100, 60, fixed=1, required=0),
                    control("R1", 100, 60, fixed=1, required=1, created=1),
                    control("R2", 300, 60, fixed=1, required=2),
                )
            ],
            0,
            100,
            160,
            300,
            360,
        ),
        [(0, "R1", 1), (300, "R2", 2), (360, "R2", 3)],
    ),
    Case(
        "no replyTo: nothing to post, still executed",
        steady([program(1, control("N1", 100, 60, fixed=1, reply_to=None))], 0, 100),
        [],
        {100: "N1"},
    ),
    Case(
        "received, then the gateway was down over the whole window: missed, no 2 or 3",
        steady([program(1, A)], 0, 500),
        [(0, "A1", 1)],
        {500: None},
        {"A1": Phase.MISSED},
    ),
    Case(
        "no programs at all: release",
        steady([], 0),
        [],
        {0: None},
    ),
    Case(
        "default of the highest-priority program that has one",
        steady(
            [
                program(3, default=DERControlBase(opModFixedW=300)),
                program(2, default=DERControlBase(opModTargetW=None, opModFixedW=200)),
                program(1),
            ],
            0,
        ),
        [],
        {0: "default"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_event_lifecycle(case: Case) -> None:
    run = Runner()
    for t, programs in case.steps:
        run.at(t, programs)
    assert run.sent == case.responses
    for t, expected in case.power.items():
        assert source(run.plans[t]) == expected, f"power source at t={t}"
    last = run.plans[case.steps[-1][0]]
    for mrid, phase in case.phases.items():
        assert last.states[mrid].phase is phase


def test_events_for_other_device_categories_are_ignored() -> None:
    run = Runner()
    pv_only = replace(control("P1", 100, 60, fixed=1), deviceCategory=1 << 21)
    storage = replace(control("S1", 100, 60, fixed=1, created=1), deviceCategory=(1 << 21) | (1 << 25))
    zero = replace(control("Z1", 300, 60, fixed=1), deviceCategory=0)
    plan = run.at(100, [program(1, pv_only, storage, zero)])
    assert source(plan) == "S1"
    assert "P1" not in plan.states
    assert run.sent == [(100, "S1", 1), (100, "S1", 2), (100, "Z1", 1)]


def test_default_chosen_by_primacy() -> None:
    plan = Runner().at(
        0,
        [
            program(3, default=DERControlBase(opModFixedW=300)),
            program(2, default=DERControlBase(opModFixedW=200)),
        ],
    )
    assert plan.power is not None and plan.power.fixed_w == 200


@pytest.mark.parametrize(
    ("rand_start", "rand_duration", "low_start", "high_start", "low_len", "high_len"),
    [
        (30, None, 100, 130, 60, 60),
        (-30, None, 70, 100, 60, 60),
        (None, 20, 100, 100, 60, 80),
        (None, -20, 100, 100, 40, 60),
        (600, -10, 100, 700, 50, 60),
    ],
)
def test_randomization_bounds_and_direction(
    rand_start: int | None,
    rand_duration: int | None,
    low_start: float,
    high_start: float,
    low_len: float,
    high_len: float,
) -> None:
    for seed in range(20):
        run = Runner(seed)
        ev = control("A1", 100, 60, fixed=1, rand_start=rand_start, rand_duration=rand_duration)
        state = run.at(0, [program(1, ev)]).states["A1"]
        start, length = state.start - T0.timestamp(), state.end - state.start
        assert low_start <= start <= high_start
        assert low_len <= length <= high_len


def test_the_draw_is_made_once_and_kept() -> None:
    run = Runner(3)
    ev = control("A1", 100, 60, fixed=1, rand_start=300, rand_duration=100)
    first = run.at(0, [program(1, ev)]).states["A1"]
    # A later evaluation with another generator (as after a restart) keeps the persisted draw.
    run.rng = random.Random(99)
    again = run.at(10, [program(1, ev)]).states["A1"]
    assert (again.start, again.end) == (first.start, first.end)
    assert first.start != at(100).timestamp()
    # The start moves with the draw: before it, scheduled; from it, active with "started".
    assert run.at(first.start - T0.timestamp() - 0.001, [program(1, ev)]).power is None
    plan = run.at(first.start - T0.timestamp(), [program(1, ev)])
    assert source(plan) == "A1"
    assert run.sent[-1][1:] == ("A1", 2)


def test_cancel_with_randomization_winds_down_within_the_bound() -> None:
    run = Runner(5)
    run.at(100, [program(1, control("A1", 100, 600, fixed=1))])
    cancelled = control("A1", 100, 600, fixed=1, status=3, rand_start=40, rand_duration=-20)
    plan = run.at(200, [program(1, cancelled)])
    stop = run.records["A1"].stop_at
    assert stop is not None and 200 <= stop - T0.timestamp() <= 240
    if stop - T0.timestamp() > 200:
        assert source(plan) == "A1"
        assert plan.next_change == stop
    plan = run.at(stop - T0.timestamp(), [program(1, cancelled)])
    assert plan.power is None
    assert run.sent == [(100, "A1", 1), (100, "A1", 2), (stop - T0.timestamp(), "A1", 6)]


def test_cancel_with_randomization_before_start_is_immediate() -> None:
    run = Runner()
    run.at(0, [program(1, control("A1", 100, 60, fixed=1, status=3, rand_start=30))])
    assert run.sent == [(0, "A1", 1), (0, "A1", 6)]


def test_restart_resumes_from_records_without_repeating_responses() -> None:
    ev = control("A1", 100, 60, fixed=1, rand_start=20)
    run = Runner(11)
    run.at(0, [program(1, ev)])
    run.at(125, [program(1, ev)])
    kept = dict(run.records)
    restarted = Runner(12)
    restarted.records = kept
    plan = restarted.at(130, [program(1, ev)])
    assert source(plan) == "A1"
    assert restarted.sent == []
    assert plan.records == ()


def test_next_change_is_the_nearest_transition() -> None:
    run = Runner()
    programs = [program(1, A, B_NEXT)]
    assert run.at(0, programs).next_change == at(100).timestamp()
    assert run.at(100, programs).next_change == at(160).timestamp()
    assert run.at(160, programs).next_change == at(220).timestamp()
    assert run.at(220, programs).next_change is None


def test_unchanged_evaluation_returns_no_records() -> None:
    run = Runner()
    run.at(0, [program(1, A)])
    plan = run.at(10, [program(1, A)])
    assert plan.records == () and plan.responses == ()


def test_commands_carry_values_ramp_and_default_gradient() -> None:
    run = Runner()
    ev = control("A1", 0, 60, target=(-2, 3), ramp=250)
    plan = run.at(0, [program(1, ev, default=DERControlBase(opModFixedW=0), grad=27)])
    assert plan.power is not None
    assert plan.power.target_w == -2000.0
    assert plan.power.ramp_s == 2.5
    assert plan.power.grad_pct_per_s == 0.27


def test_mrids_compare_case_insensitively() -> None:
    run = Runner()
    run.at(0, [program(1, control("abcd", 100, 60, fixed=1))])
    run.at(1, [program(1, control("ABCD", 100, 60, fixed=1))])
    assert run.sent == [(0, "ABCD", 1)]


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        evaluate([], {}, T0.replace(tzinfo=None), random.Random())


def test_modes_in_force_combine_into_one_command_each_from_its_own_event_or_the_default() -> None:
    setpoint = control("S1", 100, 60, target=(3000, 0))
    cap = control("C1", 100, 60, created=1, base=DERControlBase(opModMaxLimW=4000, opModFixedVar=VAR))
    default = DERControlBase(opModFixedW=1000, opModMaxLimW=9000)
    plan = Runner().at(120, [program(1, setpoint, cap, default=default)])
    assert plan.power is not None
    assert (plan.power.source, plan.power.target_w, plan.power.max_limit) == ("S1", 3000.0, 4000)
    assert plan.states["C1"].ignored == ("opModFixedVar",)
    assert plan.in_force == {"W": "S1", "MaxLimW": "C1"}
    # the cap alone in force: the default's setpoint under the event's cap
    plan = Runner().at(120, [program(1, cap, default=default)])
    assert plan.power is not None
    assert (plan.power.source, plan.power.fixed_w, plan.power.max_limit) == ("default", 1000, 4000)
    # no event: the default's own cap
    plan = Runner().at(120, [program(1, default=default)])
    assert plan.power is not None and plan.power.max_limit == 9000


def test_connect_false_ceases_whatever_else_is_in_force() -> None:
    stop = control("X1", 100, 60, base=DERControlBase(opModConnect=False))
    plan = Runner().at(120, [program(1, A, stop)])
    assert plan.power is not None and plan.power.cease and plan.power.source == "X1"


def test_a_csip_aus_export_limit_alone_is_applied_and_combines_with_the_default_setpoint() -> None:
    limit = DERControlBase(opModExpLimW=ActivePower(value=15, multiplier=2))
    run = Runner()
    plan = run.at(
        120, [program(1, control("E1", 100, 60, base=limit), default=DERControlBase(opModFixedW=8000))]
    )
    assert plan.power is not None
    assert (plan.power.fixed_w, plan.power.discharge_cap_w, plan.power.charge_cap_w) == (8000, 1500.0, None)
    assert plan.in_force == {"ExpLimW": "E1"}
    assert run.sent == [(120, "E1", 1), (120, "E1", 2)]
    # the smaller of export and generation limits; import and load limit charging
    both = DERControlBase(
        opModGenLimW=ActivePower(value=900, multiplier=0),
        opModExpLimW=ActivePower(value=2000, multiplier=0),
        opModLoadLimW=ActivePower(value=700, multiplier=0),
    )
    plan = Runner().at(120, [program(1, control("E2", 100, 60, base=both))])
    assert plan.power is not None
    assert (plan.power.discharge_cap_w, plan.power.charge_cap_w) == (900.0, 700.0)
