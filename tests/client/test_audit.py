"""The conformance self-audit can fail: it passes the poller and catches a deliberately broken one."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from app.client.poll_schedule import PollSchedule
from tests.audit import audit, lab_poll_rates
from tests.client.sim import Rig
from wattsmart_lab.server import LabServer

MakeRig = Callable[..., AbstractAsyncContextManager[Rig]]
HOUR = 3600.0


class HastySchedule(PollSchedule):
    """A broken poller: it takes every pollRate for a third of what it is."""

    def record(self, href: str, now: float, rate: float) -> None:
        super().record(href, now, rate / 3)


async def test_the_audit_passes_the_poller_and_fails_a_broken_one(
    sim_server: LabServer, make_rig: MakeRig
) -> None:
    rates = sim_server.tree.poll_rates
    rates.dcap, rates.tm, rates.edev, rates.fsa, rates.derp, rates.der, rates.mup = (
        60,
        None,  # Time without a pollRate: the default 900 s, not DeviceCapability's 60 s
        120,
        None,
        30,
        None,
        90,
    )
    rate_of = lab_poll_rates(rates, default=900)
    async with make_rig(sim_server) as rig:
        await rig.run_until(HOUR)
    good = list(sim_server.requests)
    assert len(good) > 100
    assert audit(good, rate_of, []) == []

    sim_server.clear_requests()
    async with make_rig(sim_server) as rig:
        rig.discovery.schedule = HastySchedule(random.Random(1))
        await rig.run_until(2 * HOUR)  # the simulated clock goes on from the first run's hour
    broken = audit(sim_server.requests, rate_of, [])
    # every resource it polls is caught, each with its path, gap and pollRate
    assert {line.split("?")[0] for line in broken} >= {
        "GET /dcap",
        "GET /tm",
        "GET /edev",
        "GET /mup",
        "GET /fsa/0/derp",
        "GET /derp/1/derc",
    }
    assert any("pollRate 900 s" in line and line.startswith("GET /tm") for line in broken)
