"""Readings that fail the guard's checks still reach the server, flagged questionable, never as clean truth;
a changed rating reaches DERCapability/DERSettings within a minute. Against the lab server over TLS."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

from app.client.server import Server
from app.config import Config
from app.sep import parse
from app.sep.der import DERSettings
from app.sep.metering_mirror import Reading, Uom
from app.telemetry.points import QUESTIONABLE
from hal.inverter import Nameplate, SafeInverter
from hal.inverter.base import Telemetry
from hal.inverter.battery import BatterySpec
from tests.telemetry.conftest import START, Device
from tests.telemetry.helpers import received_readings, running
from tests.telemetry.simclock import SimClock
from tests.telemetry.test_service import service_for
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter


class SpikyInverter(SimInverter):
    """Reports an impossible 99 kW now and then, as a vendor's garbage register would."""

    spikes: frozenset[int] = frozenset()

    async def read_telemetry(self) -> Telemetry:
        sample = await super().read_telemetry()
        if int(sample.timestamp.timestamp()) in self.spikes:
            return dataclasses.replace(sample, w=99_000.0)
        return sample


def posted_power(lab: LabServer) -> dict[int, Reading]:
    """Every Real Power reading the server received, by its time."""
    uom = {n: mup.MirrorMeterReading[0].ReadingType.uom for n, mup in lab.tree.mups.items()}  # type: ignore[union-attr]
    return {tick: reading for n, tick, reading in received_readings(lab) if uom[n] == Uom.W}


async def test_an_impossible_power_is_posted_as_questionable(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    make_config: Callable[..., Config],
    assert_valid: Callable[[bytes], None],
) -> None:
    first = int((START + timedelta(seconds=10)).timestamp()) // 30 * 30 + 30
    spiky = SpikyInverter(BatterySpec(), wall_clock=clock.now)
    spiky.spikes = frozenset({first + 60, first + 90})
    guard = SafeInverter(spiky, Nameplate(max_discharge_w=5000, max_charge_w=5000))
    config = make_config()
    async with running(service_for(config, guard, http, device, clock)) as stop:  # type: ignore[arg-type]
        await clock.run_until(START + timedelta(minutes=10, seconds=5))
        await stop()
    power = posted_power(lab)
    flagged = {t: r for t, r in power.items() if r.qualityFlags}
    assert sorted(flagged) == sorted(spiky.spikes)
    assert all(r.qualityFlags == QUESTIONABLE and r.value == 99_000 for r in flagged.values())
    assert len(power) > 10 and all(abs(r.value or 0) <= 5000 for t, r in power.items() if t not in flagged)
    for request in lab.requests:
        if request.method == "POST":
            assert_valid(request.body)


async def test_a_changed_rating_reaches_der_settings_within_a_minute(
    lab: LabServer,
    http: Server,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
) -> None:
    guard = SafeInverter(inverter, monotonic=lambda: clock.now().timestamp())
    config = make_config()
    change = START + timedelta(minutes=5, seconds=7)
    async with running(service_for(config, guard, http, device, clock)) as stop:  # type: ignore[arg-type]
        await clock.run_until(change)
        inverter.model.spec = dataclasses.replace(inverter.model.spec, max_w=3000.0, max_discharge_w=3000.0)
        await clock.run_until(change + timedelta(minutes=3))
        await stop()
    puts = [
        (r.at, parse(DERSettings, r.body))
        for r in lab.requests
        if r.method == "PUT" and r.path.endswith("derg")
    ]
    assert [s.setMaxW.watts for _, s in puts] == [5000, 3000]  # type: ignore[union-attr]
    assert timedelta(0) < puts[1][0] - change <= timedelta(seconds=60)
