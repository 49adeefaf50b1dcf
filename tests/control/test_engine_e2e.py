"""End to end: the lab 2030.5 server over mutual TLS -> the engine -> the simulated battery.

Short real schedules (events start 1-2 s ahead); the latency is measured from each event's
start to the inverter's own write log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest

from app.client.server import Server
from app.client.session import Session
from app.config import Config, ControlConfig
from app.control.engine import ControlEngine
from app.control.ledger import Ledger
from app.sep.der import DefaultDERControl, DERControlBase
from app.sep.response import ResponseStatus
from app.sep.types import ActivePower
from hal.clock import utc_now
from hal.inverter.battery import BatterySpec
from hal.inverter.guard import SafeInverter
from hal.inverter.settings import Nameplate
from tests.control.fakes import RecordingInverter
from tests.control.fakes import wait_until as _wait_until
from tests.hal.conftest import SPEC as HAL_SPEC
from tests.hal.test_sunspec_setpoint import sunspec
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer
from wattsmart_lab.tree import PollRates

# The sim battery: 5 kW both ways, so +50 % of its max discharge rate is 2500 W.
SPEC = BatterySpec(max_w=5000, max_charge_w=5000, max_discharge_w=5000, initial_soc_pct=50)
FIXED = 0  # program indexes in the lab server: 0 = primacy 2, 1 = primacy 1, 2 = primacy 0 (FSA 1)
CONTRACTED = 1
SPEEDUP = 10.0


class Gateway:
    """The engine wired as the gateway wires it: the Server port over a real Session, its run task."""

    def __init__(self, config: Config, inverter: RecordingInverter, seed: int) -> None:
        self.config = config
        self.inverter = inverter
        # The client never polls faster than every 10 s; its clock runs 10x fast here, so the
        # lab's 10 s pollRates mean 1 s: cancellations and new events arrive within a second.
        self.session = Session(
            config.server,
            rng=random.Random(seed),
            monotonic=lambda: time.monotonic() * SPEEDUP,
            sleep=lambda seconds: asyncio.sleep(seconds / SPEEDUP),
        )
        self.server = Server(self.session.server_clock)
        self._serving = self.server.serving(self.session)
        self.engine = ControlEngine(
            config,
            inverter,
            self.server,
            self.session.identity.lfdi,
            rng=random.Random(seed),
            server_clock_offset=lambda: self.session.server_clock.offset.total_seconds(),
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.session.__aenter__()
        await self._serving.__aenter__()
        self._task = asyncio.create_task(self.engine.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.engine.stop()
        await self._serving.__aexit__(None, None, None)
        await self.session.close()


@pytest.fixture
def e2e_config(config: Config) -> Config:
    return Config(
        # retries within 2 s (0.2 s for the 10x-fast poller) once the server is back
        server=dataclasses.replace(config.server, max_backoff_s=2.0),
        state_dir=config.state_dir,
        control=ControlConfig(fail_safe_after_s=60, reassert_interval_s=60),
    )


@contextlib.asynccontextmanager
async def gateway(
    config: Config, lab: LabServer, inverter: RecordingInverter, seed: int = 1, derp_rate: int = 10
) -> AsyncIterator[Gateway]:
    # Time is read once (its 900 s is 90 s here): the gateway's server-clock offset stays put.
    lab.tree.poll_rates = PollRates(dcap=10, tm=900, edev=10, fsa=10, derp=derp_rate, der=10, mup=10)
    gw = Gateway(config, inverter, seed)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    # generous: a loaded CI box may take seconds for the first TLS walk; latency is measured, not waited
    await _wait_until(predicate, timeout_s)


def responses(lab: LabServer) -> list[tuple[str, int]]:
    return [(r.subject.upper(), r.status or 0) for r in lab.tree.responses]


def latency_s(gw: Gateway, watts: float, start: datetime) -> float:
    """Seconds from `start` to the first write of `watts`, both in server time as the gateway knows it.

    2030.5 Time has whole seconds, so the gateway's idea of the server's clock is itself off by up
    to a second (the client's estimate); that is not the engine's delay and is left out here.
    """
    offset = gw.session.server_clock.offset
    early = timedelta(milliseconds=5)  # a wake-up a hair before the instant is on time
    written = next(t for t, w in gw.inverter.writes if w == watts and t + offset >= start - early)
    return (written + offset - start).total_seconds()


async def test_fixed_and_target_events_reach_the_battery_within_a_second(
    lab_server: LabServer, e2e_config: Config
) -> None:
    tree = lab_server.tree
    inverter = RecordingInverter(SPEC)
    start1 = tree.now().replace(microsecond=0) + timedelta(seconds=3)
    start2 = start1 + timedelta(seconds=2)
    fixed = tree.add_control(FIXED, start=start1, duration=2, fixed_w=5000)
    target = tree.add_control(CONTRACTED, start=start2, duration=1, target_w=-2000)
    async with gateway(e2e_config, lab_server, inverter) as gw:
        await wait_until(lambda: (target.mRID, 3) in responses(lab_server), timeout_s=10)
        await wait_until(lambda: gw.engine.setpoint is None)
        latency1 = latency_s(gw, 2500.0, start1)
        latency2 = latency_s(gw, -2000.0, start2)
    assert -0.005 <= latency1 < 1.0 and -0.005 <= latency2 < 1.0
    assert inverter.releases  # back to its own mode after the last event
    got = responses(lab_server)
    for mrid in (fixed.mRID, target.mRID):
        assert [s for m, s in got if m == mrid] == [1, 2, 3]
    assert all(r.endDeviceLFDI.lower() == gw.session.identity.lfdi for r in tree.responses)


async def test_superseding_event_yields_7_and_cancellation_yields_6(
    lab_server: LabServer, e2e_config: Config
) -> None:
    tree = lab_server.tree
    inverter = RecordingInverter(SPEC)
    start = tree.now() + timedelta(seconds=1)
    low = tree.add_control(FIXED, start=start, duration=30, fixed_w=2000)
    async with gateway(e2e_config, lab_server, inverter) as gw:
        await wait_until(lambda: gw.engine.setpoint == 1000.0)
        high = tree.add_control(CONTRACTED, start=tree.now(), duration=30, target_w=-1500)
        await wait_until(lambda: gw.engine.setpoint == -1500.0)
        await wait_until(lambda: (low.mRID, 7) in responses(lab_server))
        tree.cancel_control(high.mRID)
        await wait_until(lambda: (high.mRID, 6) in responses(lab_server))
        await wait_until(lambda: gw.engine.setpoint is None)
    got = responses(lab_server)
    assert [s for m, s in got if m == low.mRID] == [1, 2, 7]
    assert [s for m, s in got if m == high.mRID] == [1, 2, 6]


async def test_restart_mid_event_resumes_without_duplicates(
    lab_server: LabServer, e2e_config: Config
) -> None:
    tree = lab_server.tree
    inverter = RecordingInverter(SPEC)
    start = tree.now() + timedelta(seconds=1)
    event = tree.add_control(FIXED, start=start, duration=3, fixed_w=-4000, randomize_duration=2)
    async with gateway(e2e_config, lab_server, inverter, seed=1) as gw:
        await wait_until(lambda: gw.engine.setpoint == -2000.0)
    ledger = Ledger(e2e_config.state_dir)
    drawn = ledger.records()[event.mRID.upper()].duration_offset
    ledger.close()
    assert inverter.model.target_w is None  # released at shutdown
    # A new process: other random draws, same ledger. It must resume, not restart, the event.
    async with gateway(e2e_config, lab_server, inverter, seed=2) as gw:
        await wait_until(lambda: gw.engine.setpoint == -2000.0, timeout_s=5)
        state = gw.engine.plan.states[event.mRID.upper()] if gw.engine.plan else None
        assert state is not None
        assert state.end - state.start == pytest.approx(3 + drawn)
        await wait_until(lambda: (event.mRID, 3) in responses(lab_server), timeout_s=10)
    assert [s for m, s in responses(lab_server) if m == event.mRID] == [1, 2, 3]
    assert utc_now() >= start


async def test_server_outage_fail_safe_then_owed_responses_delivered(
    lab_server: LabServer, e2e_config: Config
) -> None:
    tree = lab_server.tree
    tree.set_default_control(
        FIXED, DefaultDERControl(mRID="D0", DERControlBase=DERControlBase(opModFixedW=-1000))
    )
    config = dataclasses.replace(e2e_config, control=ControlConfig(fail_safe_after_s=3))
    inverter = RecordingInverter(SPEC)
    event = tree.add_control(FIXED, start=tree.now() + timedelta(seconds=1), duration=1, fixed_w=3000)
    async with gateway(config, lab_server, inverter) as gw:
        await wait_until(lambda: gw.engine.setpoint == 1500.0)
        await wait_until(lambda: (event.mRID, 2) in responses(lab_server))
        await lab_server.down()
        # The event ends while the server is away ("completed" is owed, its POST fails), and after
        # 3 s of silence the fail-safe applies the default control last seen.
        await wait_until(lambda: gw.engine.setpoint == -500.0 and gw.engine.plan is None)
        assert (event.mRID, 3) not in responses(lab_server)
        await lab_server.up()
        await wait_until(lambda: (event.mRID, 3) in responses(lab_server))
        await wait_until(lambda: gw.engine.plan is not None)
    assert [s for m, s in responses(lab_server) if m == event.mRID] == [1, 2, 3]


async def test_a_server_clock_76_years_ahead_is_followed_but_every_drop_says_so(
    lab_server: LabServer, e2e_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app")
    tree = lab_server.tree
    tree.time_offset = timedelta(days=76 * 365)  # a utility's clock fault: its Time is 76 years ahead
    now = utc_now()
    # an event running now by every other clock: by the server's own Time it ended 76 years ago
    event = tree.add_control(FIXED, start=now - timedelta(minutes=5), duration=3600, fixed_w=2000)
    inverter = RecordingInverter(SPEC)
    async with gateway(e2e_config, lab_server, inverter) as gw:
        await wait_until(lambda: (event.mRID, ResponseStatus.REJECTED_EXPIRED) in responses(lab_server))
        offset = gw.session.server_clock.offset.total_seconds()
        notices = gw.session.notices.current()
    assert abs(offset - 76 * 365 * 86400) < 5  # the server's time rules (2030.5)
    assert inverter.model.target_w is None  # never applied
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    clock_lines = [w for w in warnings if w.startswith("server clock is")]
    assert len(clock_lines) == 1 and f"{offset:+.0f} s from ours" in clock_lines[0]
    assert notices["server clock"] == clock_lines[0]  # the status page shows it
    dropped = [w for w in warnings if event.mRID in w]
    assert dropped == [
        f"event {event.mRID}: rejected: it had ended before it reached us "
        f"(server clock {offset:+.0f} s from ours)"
    ]


async def test_3000_new_controls_give_paced_responses_and_one_summary_line(
    lab_server: LabServer, e2e_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.control")
    tree = lab_server.tree
    later = tree.now() + timedelta(hours=1)
    made = [
        tree.add_control(FIXED, start=later + timedelta(hours=n), duration=60, fixed_w=100)
        for n in range(3000)
    ]
    per_s = 50.0
    config = dataclasses.replace(
        e2e_config, server=dataclasses.replace(e2e_config.server, responses_per_s=per_s)
    )
    inverter = RecordingInverter(SPEC)
    # the program's lists (60 pages of 50) are read once in this test, not every simulated 10 s
    async with gateway(config, lab_server, inverter, derp_rate=3600) as gw:
        await wait_until(lambda: len(tree.responses) >= 101, timeout_s=30)
        plan = gw.engine.plan
        waiting = gw.engine.responses_waiting
    assert plan is not None and len(plan.records) == 3000
    arrivals = [r.at for r in lab_server.requests if r.method == "POST" and r.path == "/rsps/0/rsp"]
    # paced: 100 spacings of 1/per_s take at least 2 s, and no second holds more than per_s + 1
    assert (arrivals[100] - arrivals[0]).total_seconds() >= 100 / per_s * 0.95
    for i in range(len(arrivals) - int(per_s) - 1):
        assert (arrivals[i + int(per_s) + 1] - arrivals[i]).total_seconds() >= 0.95
    assert {r.subject.upper() for r in tree.responses} <= {c.mRID for c in made}
    lines = [r.getMessage() for r in caplog.records if r.name == "app.control.engine"]
    assert len(lines) == 1, lines[:5]
    assert lines[0].startswith("3000 events changed: 3000 received (first: ")
    assert 0 < waiting < 3000 - 100  # the status page tells how many still wait
    told = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "app.control.responder"]
    assert told == [(logging.WARNING, "3000 responses owed; posting them at 50 a second (about 60 s)")]


async def test_an_event_deleted_while_in_force_is_cancelled_and_the_default_returns(
    lab_server: LabServer, e2e_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    tree = lab_server.tree
    inverter = RecordingInverter(SPEC)
    tree.set_default_control(
        FIXED, DefaultDERControl(mRID="D0", DERControlBase=DERControlBase(opModFixedW=1000))
    )
    event = tree.add_control(FIXED, start=tree.now(), duration=60, fixed_w=4000)
    async with gateway(e2e_config, lab_server, inverter) as gw:
        await wait_until(lambda: gw.engine.setpoint == 2000.0)
        tree.delete_control(event.mRID)  # a server that deletes rather than cancels
        await wait_until(lambda: gw.engine.setpoint == 500.0)  # the default: 10 % of 5000 W
        await wait_until(lambda: (event.mRID, 6) in responses(lab_server))
    assert [s for m, s in responses(lab_server) if m == event.mRID] == [1, 2, 6]
    assert any("gone from program" in r.getMessage() and event.mRID in r.getMessage() for r in caplog.records)


async def test_a_csip_aus_export_limit_alone_is_obeyed_at_the_battery_and_answered_1_2_3(
    lab_server: LabServer, e2e_config: Config
) -> None:
    tree = lab_server.tree
    inverter = RecordingInverter(SPEC)
    # the battery discharges at 80 % by default; the export limit (csipaus namespace) caps it at 1500 W
    default = DefaultDERControl(mRID="D0", DERControlBase=DERControlBase(opModFixedW=8000))
    tree.set_default_control(FIXED, default)
    limit = DERControlBase(opModExpLimW=ActivePower(value=15, multiplier=2))
    async with gateway(e2e_config, lab_server, inverter) as gw:
        await wait_until(lambda: gw.engine.setpoint == 4000.0)
        # scheduled once the default is applied: a slow start-up (a loaded machine) cannot skip it
        event = tree.add_control(CONTRACTED, start=tree.now() + timedelta(seconds=2), duration=2, base=limit)
        await wait_until(lambda: gw.engine.setpoint == 1500.0)
        await wait_until(lambda: (event.mRID, 3) in responses(lab_server))
        await wait_until(lambda: gw.engine.setpoint == 4000.0)  # the limit over: the default again
    assert [s for m, s in responses(lab_server) if m == event.mRID] == [1, 2, 3]
    assert 1500.0 in inverter.watts


async def test_an_export_limit_alone_is_held_by_a_sunspec_inverter_as_a_limit(
    lab_server: LabServer, e2e_config: Config
) -> None:
    """Over Modbus: the inverter holds the cap (704 WMaxLimPct) and the battery keeps its own mode."""
    tree = lab_server.tree
    async with (
        SunSpecServer(HAL_SPEC) as server,
        sunspec(server, revert_timeout_s=120.0) as device,
    ):
        dev = server.device
        dev.battery.own_w = 4000.0  # its own mode covers a 4 kW house load
        inverter = SafeInverter(device, Nameplate(max_discharge_w=5000.0, max_charge_w=4000.0))
        async with gateway(e2e_config, lab_server, inverter) as gw:  # type: ignore[arg-type]
            await wait_until(lambda: gw.engine.plan is not None)
            limit = DERControlBase(opModExpLimW=ActivePower(value=15, multiplier=2))
            event = tree.add_control(
                CONTRACTED, start=tree.now() + timedelta(seconds=2), duration=3, base=limit
            )
            await wait_until(lambda: dev.get(704, "WMaxLimPctEna") == 1)
            assert dev.get(704, "WMaxLimPct") == 300  # 30.0 % of WMax 5000 W
            await asyncio.sleep(0.2)
            dev.on_access(time.monotonic())
            assert dev.battery.power_w == pytest.approx(1500)
            assert dev.get(704, "WSetEna") == 0  # never a setpoint
            await wait_until(lambda: (event.mRID, 3) in responses(lab_server))
            await wait_until(lambda: dev.get(704, "WMaxLimPctEna") == 0)
            await asyncio.sleep(0.2)
            dev.on_access(time.monotonic())
            assert dev.battery.power_w == pytest.approx(4000)
    assert [s for m, s in responses(lab_server) if m == event.mRID] == [1, 2, 3]
    wset = dev.address(704, "WSetEna")
    assert not any(w.address == wset and w.values[0] == 1 for w in dev.writes)
