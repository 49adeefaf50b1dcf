"""DERAvailability: its values from SoC, capacity, limits and ratings; sent at start-up and on a change
beyond the deadband (never per reading), over the real lab server with the simulated battery."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.client.session import Session
from app.config import Config
from app.health import Health
from app.sep import parse, to_xml
from app.sep.der import DERAvailability
from app.telemetry import TelemetryService
from app.telemetry.availability import SOC_DEADBAND_PCT, AvailabilityReporter, SocLimits, der_availability
from app.telemetry.der import nameplate
from hal.inverter import BatterySpec, Ratings
from tests.telemetry.conftest import START, Device
from tests.telemetry.helpers import running
from tests.telemetry.simclock import SimClock
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter

RATINGS = Ratings(max_w=5000, max_charge_w=4000, max_discharge_w=5000, energy_capacity_wh=10000)
LIMITS = SocLimits(10.0, 90.0)
AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_values_from_soc_capacity_limits_and_ratings(assert_valid: Callable[[bytes], None]) -> None:
    plate = nameplate(RATINGS, None)
    doc = der_availability(plate, 60.0, LIMITS, AT)
    assert doc.statWAvail is not None and doc.statWAvail.watts == 5000
    assert doc.reservePercent == 10000 and doc.reserveChargePercent == 10000
    # 50 % of 10 kWh above the minimum at 5 kW: 1 h; 30 % below the maximum at 4 kW: 45 min
    assert doc.availabilityDuration == 3600 and doc.maxChargeDuration == 2700
    assert doc.statVarAvail is None  # no reactive rating is known
    assert doc.readingTime == AT
    assert_valid(to_xml(doc))


def test_at_the_soc_limits_nothing_is_available_that_way() -> None:
    plate = nameplate(RATINGS, None)
    empty = der_availability(plate, 10.0, LIMITS, AT)
    assert empty.statWAvail is not None and empty.statWAvail.watts == 0
    assert (empty.reservePercent, empty.availabilityDuration) == (0, 0)
    assert empty.reserveChargePercent == 10000 and empty.maxChargeDuration == 7200
    full = der_availability(plate, 95.0, LIMITS, AT)  # above the maximum: takes nothing more
    assert (full.reserveChargePercent, full.maxChargeDuration) == (0, 0)
    assert full.availabilityDuration == round(10000 * 0.85 / 5000 * 3600)


def test_unknown_ratings_leave_their_values_out() -> None:
    plate = nameplate(
        Ratings(max_w=5000, max_charge_w=None, max_discharge_w=None, energy_capacity_wh=None), None
    )
    doc = der_availability(plate, 50.0, LIMITS, AT)
    # the discharge/charge limits fall back to WMax; without a capacity no duration is known
    assert doc.statWAvail is not None and doc.statWAvail.watts == 5000
    assert doc.availabilityDuration is None and doc.maxChargeDuration is None
    with pytest.raises(ValueError, match="below max"):
        SocLimits(50.0, 50.0)


class Recorder:
    """A server port that records the documents PUT (the deadband logic alone, no server)."""

    def __init__(self) -> None:
        self.put_docs: list[object] = []
        self.tree = None

    async def post(self, href: str, obj: object) -> str | None:
        raise AssertionError("no POST expected")

    async def put(self, href: str, obj: object) -> None:
        self.put_docs.append(obj)

    async def refresh(self, href: str) -> None:
        return None


async def test_the_deadband_sends_on_change_not_per_reading() -> None:
    uplink = Recorder()
    reporter = AvailabilityReporter(uplink, "/dera", LIMITS)
    plate = nameplate(RATINGS, None)
    soc = 50.0
    for n in range(200):  # 100 min of readings drifting down 0.1 point each
        await reporter.send(plate, soc - n * 0.1, AT + timedelta(seconds=30 * n))
    # the first, then one per SOC_DEADBAND_PCT points (19.9 points moved)
    assert len(uplink.put_docs) == 1 + int(19.9 // SOC_DEADBAND_PCT)
    sent = len(uplink.put_docs)
    await reporter.send(nameplate(dataclasses.replace(RATINGS, max_discharge_w=3000), None), 30.1, AT)
    assert len(uplink.put_docs) == sent + 1  # a rating change: at once
    await reporter.send(nameplate(dataclasses.replace(RATINGS, max_discharge_w=3000), None), 30.0, AT)
    assert len(uplink.put_docs) == sent + 1
    await reporter.send(None, 30.0, AT)  # ratings not read yet: nothing to say
    await reporter.send(plate, None, AT)  # no SoC in this reading
    assert len(uplink.put_docs) == sent + 1


async def test_reaching_a_soc_limit_is_sent_at_once() -> None:
    uplink = Recorder()
    reporter = AvailabilityReporter(uplink, "/dera", LIMITS)
    plate = nameplate(RATINGS, None)
    await reporter.send(plate, 11.0, AT)
    await reporter.send(plate, 10.5, AT)
    await reporter.send(plate, 10.0, AT)  # at the minimum: statWAvail 0 W, well within the deadband
    docs = [d for d in uplink.put_docs if isinstance(d, DERAvailability)]
    assert [d.statWAvail.watts for d in docs if d.statWAvail is not None] == [5000, 0]


async def test_sent_at_start_and_after_soc_and_rating_changes_over_the_lab(
    lab: LabServer,
    http: Session,
    device: Device,
    clock: SimClock,
    make_config: Callable[..., Config],
    assert_valid: Callable[[bytes], None],
) -> None:
    # 10 kWh at 30 %, SoC limits 5..100 % (the defaults); nothing but this test commands it
    inverter = SimInverter(BatterySpec(initial_soc_pct=30.0), revert_timeout_s=1e6, wall_clock=clock.now)
    config = make_config(ratings_interval_s=60)
    assert (config.control.min_soc_percent, config.control.max_soc_percent) == (5.0, 100.0)
    dera = f"/edev/{device.index}/der/0/dera"
    links = dataclasses.replace(device.links, der_availability=lab.tree.href(dera))
    service = TelemetryService(config, inverter, http, links, clock, Health(), device.lfdi)

    def sent() -> list[tuple[datetime, DERAvailability]]:
        return [
            (r.at, parse(DERAvailability, r.body))
            for r in lab.requests
            if r.method == "PUT" and r.path == dera
        ]

    async with running(service) as stop:
        await clock.run_until(START + timedelta(minutes=10))
        assert len(sent()) == 1, "idle for 10 minutes: sent once, at start-up"
        first_at, first = sent()[0]
        assert first_at <= START + timedelta(seconds=40)
        assert first.statWAvail is not None and first.statWAvail.watts == 5000
        # 25 % above the minimum of 10 kWh at 5 kW: 30 min
        assert first.availabilityDuration is not None and abs(first.availabilityDuration - 1800) <= 10

        await inverter.set_active_power(4500)  # 0.375 points of SoC per 30-s reading
        await clock.run_until(START + timedelta(minutes=50))  # down to the 5 % minimum and below
        readings = 40 * 2
        docs = [d for _, d in sent()]
        assert len(docs) < readings / 8, "not sent per reading"
        falling = [d for d in docs if d.statWAvail is not None and d.statWAvail.watts > 0]
        durations = [d.availabilityDuration for d in falling if d.availabilityDuration is not None]
        # 1 point of SoC is 72 s at 5 kW: consecutive sends are SOC_DEADBAND_PCT points apart, give
        # or take one reading (0.375 points, 27 s)
        step = SOC_DEADBAND_PCT * 72
        gaps = [a - b for a, b in itertools.pairwise(durations)]
        assert len(gaps) >= 3 and all(step <= g <= step + 30 for g in gaps), gaps
        last = docs[-1]
        assert last.statWAvail is not None and last.statWAvail.watts == 0
        assert (last.reservePercent, last.availabilityDuration) == (0, 0)

        await inverter.release()
        await clock.run_until(START + timedelta(minutes=55))
        before = len(sent())
        changed = clock.now()
        inverter.model.spec = dataclasses.replace(inverter.model.spec, max_charge_w=2500.0)
        await clock.run_until(START + timedelta(minutes=58))
        after = sent()
        assert len(after) == before + 1, "a rating change is sent once"
        at, doc = after[-1]
        assert at - changed <= timedelta(seconds=90)
        soc = inverter.model.soc_pct
        # the room up to 100 % of 10 kWh at the new 2.5 kW charge limit
        assert doc.maxChargeDuration == pytest.approx((100 - soc) / 100 * 10000 / 2500 * 3600, abs=60)
        await stop()

    for request in lab.requests:
        if request.method == "PUT" and request.path == dera:
            assert_valid(request.body)
    assert lab.tree.stored[dera] == dataclasses.replace(sent()[-1][1], href=lab.tree.href(dera))
