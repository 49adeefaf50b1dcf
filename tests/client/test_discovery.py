"""Discovery against the lab server: paging, decoys, identity, primacy, Time, missing EndDevice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

import pytest

from app.client.discovery import MAX_PAGES
from app.sep.der import DefaultDERControl, DERControlBase
from tests.client.sim import FakeTime, Rig
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer

MakeRig = Callable[..., AbstractAsyncContextManager[Rig]]


async def test_finds_our_device_through_pages_of_decoys(sim_server: LabServer, make_rig: MakeRig) -> None:
    tree = sim_server.tree
    for n in range(7):  # 3 default decoys + 7 more, our device registered first
        tree.register(f"{n:02d}" + "ab" * 19)
    tree.max_page = 3  # the server pages in threes whatever we ask
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
    assert snap.end_device is not None
    assert snap.end_device.lFDI == snap.identity.lfdi
    pages = [r.query for r in sim_server.requests if r.path == "/edev"]
    assert [q["s"] for q in pages] == ["0", "3", "6", "9"]
    assert all("l" in r.query for r in sim_server.requests if r.path in ("/edev", "/mup"))


async def test_l_absent_trap_does_not_hide_items(sim_server: LabServer, make_rig: MakeRig) -> None:
    # the server defaults to one item per page when `l` is absent (as envoy does)
    assert sim_server.tree.page_limit_default == 1
    now = sim_server.tree.now()
    for minute in range(5):
        sim_server.tree.add_control(1, start=now + timedelta(minutes=minute), duration=60, fixed_w=1000)
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
    contracted = next(p for p in snap.programs if p.program.primacy == 1)
    assert len(contracted.controls) == 5
    list_gets = [r for r in sim_server.requests if r.path.endswith(("/derc", "/actderc", "/edev", "/fsa"))]
    assert list_gets and all(r.query.get("l") for r in list_gets)


async def test_every_control_page_is_read(sim_server: LabServer, make_rig: MakeRig) -> None:
    sim_server.tree.max_page = 2
    now = sim_server.tree.now()
    made = [
        sim_server.tree.add_control(0, start=now + timedelta(hours=h), duration=600, fixed_w=-2000)
        for h in range(5)
    ]
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
    program = next(p for p in snap.programs if p.program.primacy == 2)
    assert [c.mRID for c in program.controls] == [c.mRID for c in made]
    assert sim_server.count("GET", "/derp/0/derc") == 3
    assert program.controls_complete  # read to its end: a control missing from it is gone


async def test_a_control_list_cut_at_the_page_bound_is_not_complete(
    sim_server: LabServer, make_rig: MakeRig
) -> None:
    sim_server.tree.max_page = 1
    now = sim_server.tree.now()
    for minute in range(MAX_PAGES + 2):
        sim_server.tree.add_control(0, start=now + timedelta(minutes=minute), duration=60, fixed_w=100)
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
    program = next(p for p in snap.programs if p.program.primacy == 2)
    assert len(program.controls) == MAX_PAGES
    assert not program.controls_complete  # an event missing from it may still be on the server


async def test_programs_ordered_by_primacy_across_fsas(sim_server: LabServer, make_rig: MakeRig) -> None:
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
    assert [p.primacy for p in snap.programs] == [0, 1, 2]
    assert len(snap.function_set_assignments) == 2
    der = snap.der
    assert der is not None and der.DERStatusLink is not None
    assert der.DERStatusLink.href.endswith("/ders")
    assert snap.mirror_usage_point_list_href == "/mup"


async def test_active_and_default_controls(sim_server: LabServer, make_rig: MakeRig) -> None:
    now = sim_server.tree.now()
    running = sim_server.tree.add_control(1, start=now - timedelta(seconds=30), duration=600, target_w=3000)
    sim_server.tree.add_control(1, start=now + timedelta(hours=1), duration=600, target_w=-3000)
    sim_server.tree.set_default_control(
        1, DefaultDERControl(mRID="AB" * 16, DERControlBase=DERControlBase(opModFixedW=0))
    )
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
    branch = next(p for p in snap.programs if p.primacy == 1)
    assert [c.mRID for c in branch.active_controls] == [running.mRID]
    assert len(branch.controls) == 2
    assert branch.default_control is not None
    assert branch.default_control.DERControlBase.opModFixedW == 0


async def test_time_offset_applied(sim_server: LabServer, make_rig: MakeRig, fake_time: FakeTime) -> None:
    sim_server.tree.time_offset = timedelta(minutes=-7, seconds=-3)
    async with make_rig(sim_server) as rig:
        await rig.discovery.walk()
        offset = rig.server_clock.offset
        assert abs((rig.server_clock.now() - sim_server.tree.now()).total_seconds()) < 1.0
    assert abs(offset.total_seconds() + 423) < 1.0
    assert rig.server_clock.now().tzinfo is not None


async def test_unregistered_device_says_lfdi_and_sfdi_once_then_appears(
    pki: Pki, fake_time: FakeTime, make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.client.discovery")
    async with LabServer(pki, register=(), clock=fake_time.utc) as server:
        server.tree.poll_rates.edev = 120
        async with make_rig(server) as rig:
            first = await rig.discovery.walk()
            assert first.end_device is None and not first.programs
            fake_time.t += 60
            await rig.discovery.walk()  # not yet due: no new request, no new log line
            assert server.count("GET", "/edev") == 1
            server.tree.register(first.identity.lfdi)
            fake_time.t += 120 + 13  # pollRate plus the largest phase
            found = await rig.discovery.walk()
    assert found.end_device is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert first.identity.lfdi in warnings[0] and str(first.identity.sfdi) in warnings[0]
    assert any("found our EndDevice" in r.getMessage() for r in caplog.records)


async def test_matches_on_sfdi_when_the_server_leaves_lfdi_out(
    sim_server: LabServer, make_rig: MakeRig
) -> None:
    sim_server.tree.show_lfdi = False
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
    assert snap.end_device is not None
    assert snap.end_device.lFDI is None and snap.end_device.sFDI == snap.identity.sfdi


async def test_paging_stops_at_the_page_bound_with_one_warning(
    sim_server: LabServer, make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.client")
    tree = sim_server.tree
    for n in range(MAX_PAGES + 20):
        tree.register(f"{n:04x}" + "cd" * 18)
    tree.max_page = 1  # one item a page, whatever `l` asks
    async with make_rig(sim_server) as rig:
        snap = await rig.discovery.walk()
        await rig.discovery.walk()  # nothing due: no more pages, no second warning
    assert snap.end_device is not None  # ours is among the first pages
    assert sim_server.count("GET", "/edev") == MAX_PAGES
    lines = [r.getMessage() for r in caplog.records if "/edev lists" in r.getMessage()]
    assert lines == [
        f"/edev lists {MAX_PAGES + 24} items; reading only the first {MAX_PAGES} ({MAX_PAGES} pages)"
    ]
