"""The guard over the real Modbus TCP simulator: no register ever holds more than the ceiling or the live
rating, garbage from the inverter is never taken as truth, and each kind of garbage is said once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from hal.errors import HalError, NoPowerLimit
from hal.inverter import Nameplate, SafeInverter, codec, connect_inverter
from hal.inverter.base import Ratings
from hal.inverter.sunspec_points import POINTS
from tests.hal.conftest import SPEC, Monotonic, tcp_settings
from tests.hal.test_sunspec_faults import eventually_read
from wattsmart_lab.sunspec_device import SunSpecDevice
from wattsmart_lab.sunspec_server import SunSpecServer

# Below the simulator's own 5000 W discharge / 4000 W charge: the nameplate must win.
PLATE = Nameplate(max_discharge_w=3000.0, max_charge_w=2000.0)
HUGE = (20_000.0, -20_000.0, 3.3e13, -3.3e13, 1e300, -1e300)


def written_watts(dev: SunSpecDevice) -> list[float]:
    """Every 704.WSet value the device received, in W, whatever the shape of the write that carried it."""
    wset = dev.address(704, "WSet")
    sf = dev.get(704, "WSet_SF")
    out = []
    for record in dev.writes:
        at = wset - record.address
        if at >= 0 and at + 2 <= len(record.values):
            raw = codec.decode(record.values[at : at + 2], POINTS[704]["WSet"].kind)
            assert raw is not None and sf is not None
            out.append(float(raw) * 10.0 ** int(sf))
    return out


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


@pytest.fixture
async def server(sim_clock: Monotonic) -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer(SPEC, clock=sim_clock) as srv:
        yield srv


@pytest.fixture
def clock() -> Monotonic:
    return Monotonic()


async def guarded(server: SunSpecServer, plate: Nameplate | None, clock: Monotonic) -> SafeInverter:
    device = (await connect_inverter(tcp_settings(server))).inner
    return SafeInverter(device, plate, monotonic=clock)


async def test_no_write_ever_exceeds_the_nameplate(server: SunSpecServer, clock: Monotonic) -> None:
    inverter = await guarded(server, PLATE, clock)
    try:
        held = [await inverter.set_active_power(w) for w in (*HUGE, 2500.0, -1500.0)]
    finally:
        await inverter.close()
    assert held == [3000.0, -2000.0, 3000.0, -2000.0, 3000.0, -2000.0, 2500.0, -1500.0]
    written = written_watts(server.device)
    assert written and all(-2000.0 <= w <= 3000.0 for w in written)
    assert server.device.battery.target_w == -1500.0


@pytest.mark.parametrize(
    ("pins", "problem"),
    [
        ({(702, "W_SF"): -32768}, "reports no power rating"),  # the "not implemented" sentinel
        ({(702, "W_SF"): 10}, "plausible"),  # legal, but 5 kW becomes 5e13 W
        ({(702, "W_SF"): -10}, "plausible"),  # legal, but 5 kW becomes 5e-7 W: events would be 0 W
    ],
)
async def test_garbage_ratings_leave_the_nameplate_alone_in_charge(
    server: SunSpecServer,
    clock: Monotonic,
    caplog: pytest.LogCaptureFixture,
    pins: dict[tuple[int, str], float],
    problem: str,
) -> None:
    server.faults.pinned.update(pins)
    inverter = await guarded(server, PLATE, clock)
    try:
        for _ in range(3):
            ratings = await inverter.read_ratings()
            clock.advance(61)
        for watts in HUGE:
            await inverter.set_active_power(watts)
    finally:
        await inverter.close()
    assert (ratings.discharge_limit_w(), ratings.charge_limit_w()) == (3000.0, 2000.0)
    assert problem in inverter.problems["ratings"]
    assert len(warnings(caplog, "ratings")) == 1  # said once, not once per read
    assert all(-2000.0 <= w <= 3000.0 for w in written_watts(server.device))


async def test_without_ratings_or_nameplate_nothing_is_written(
    server: SunSpecServer, clock: Monotonic
) -> None:
    server.faults.pinned[(702, "W_SF")] = -32768
    inverter = await guarded(server, None, clock)
    try:
        for watts in (1000.0, -1000.0, *HUGE):
            with pytest.raises(NoPowerLimit, match=r"no inverter\.nameplate"):
                await inverter.set_active_power(watts)
    finally:
        await inverter.close()
    assert written_watts(server.device) == []
    assert "limit" in inverter.problems


async def test_a_lowered_rating_is_obeyed_within_a_minute(
    server: SunSpecServer, clock: Monotonic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hal.inverter.guard")
    changes: list[tuple[Ratings | None, Ratings]] = []
    inverter = await guarded(server, None, clock)
    inverter.on_ratings_change(lambda old, new: changes.append((old, new)))
    try:
        assert await inverter.set_active_power(5000.0) == 5000.0
        server.device.set_ratings(max_w=3000.0, max_discharge_w=2500.0, max_charge_w=2000.0)
        clock.advance(30)
        assert (await inverter.read_ratings()).discharge_limit_w() == 5000.0  # the copy is 30 s old
        await inverter.keepalive()
        assert written_watts(server.device)[-1] == 5000.0
        clock.advance(30)
        await inverter.keepalive()  # the copy is a minute old: re-read, and the setpoint re-clamped
        assert written_watts(server.device)[-1] == 2500.0
        assert server.device.battery.target_w == 2500.0
        assert (await inverter.set_active_power(-5000.0)) == -2000.0
    finally:
        await inverter.close()
    assert len(changes) == 2 and changes[0][0] is None  # the first read, then the change
    old, new = changes[1]
    assert old is not None and (old.max_w, new.max_w) == (5000.0, 3000.0)
    lines = [r.getMessage() for r in caplog.records if "ratings changed" in r.getMessage()]
    assert lines == [
        "inverter ratings changed: max_w 5000 → 3000, max_charge_w 4000 → 2000, max_discharge_w 5000 → 2500, "
        "set_max_w 5000 → 3000, set_max_charge_w 4000 → 2000, set_max_discharge_w 5000 → 2500"
    ]


async def test_a_change_within_the_tolerance_is_not_a_change(server: SunSpecServer, clock: Monotonic) -> None:
    inverter = await guarded(server, None, clock)
    try:
        first = await inverter.read_ratings()
        server.device.set_ratings(max_discharge_w=4995.0)
        clock.advance(61)
        assert await inverter.read_ratings() is first
    finally:
        await inverter.close()


async def test_a_state_of_charge_of_200_percent_is_questionable(
    server: SunSpecServer, clock: Monotonic, caplog: pytest.LogCaptureFixture
) -> None:
    inverter = await guarded(server, PLATE, clock)
    try:
        assert (await inverter.read_telemetry()).soc_pct == 50.0
        server.faults.pinned[(713, "SoC")] = 2000  # Pct_SF −1: 200.0 %
        samples = [await inverter.read_telemetry() for _ in range(3)]
        assert all(s.soc_pct is None and s.suspect == {"soc_pct": 200.0} for s in samples)
        assert len(warnings(caplog, "state of charge")) == 1
        del server.faults.pinned[(713, "SoC")]
        assert (await inverter.read_telemetry()).soc_pct == 50.0
    finally:
        await inverter.close()
    assert "soc_pct" not in inverter.problems


@pytest.mark.parametrize(
    ("pin", "subject", "suspect"),
    [
        (((701, "W"), 20_000), "w", {"w": 20_000.0}),  # beyond twice the 3 kW nameplate
        (((701, "W_SF"), -32768), "w", {}),  # the power reading's scale factor "not implemented"
        (((713, "SoC"), 0xFFFF), "soc_pct", {}),  # the SoC limits must not vanish silently
        (((701, "Hz"), 99_000), "hz", {"hz": 99.0}),
    ],
)
async def test_readings_that_fail_a_check_are_never_clean_truth(
    server: SunSpecServer,
    clock: Monotonic,
    caplog: pytest.LogCaptureFixture,
    pin: tuple[tuple[int, str], float],
    subject: str,
    suspect: dict[str, float],
) -> None:
    inverter = await guarded(server, PLATE, clock)
    try:
        await inverter.read_telemetry()
        server.faults.pinned[pin[0]] = pin[1]
        for _ in range(3):
            sample = await inverter.read_telemetry()
            assert getattr(sample, subject) is None
            assert dict(sample.suspect) == suspect
    finally:
        await inverter.close()
    assert subject in inverter.problems
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_a_rating_that_stops_being_reported_is_said_once(
    server: SunSpecServer, clock: Monotonic, caplog: pytest.LogCaptureFixture
) -> None:
    inverter = await guarded(server, PLATE, clock)
    try:
        await inverter.read_ratings()
        server.faults.pinned[(702, "WMax")] = 0xFFFF
        for _ in range(3):
            clock.advance(61)
            ratings = await inverter.read_ratings()
    finally:
        await inverter.close()
    assert ratings.set_max_w is None
    assert "max power setting (WMax) no longer reported" in inverter.problems["ratings"]
    assert len(warnings(caplog, "WMax")) == 1


async def test_the_guard_keeps_what_it_last_saw_for_the_status_page(
    server: SunSpecServer, clock: Monotonic
) -> None:
    inverter = await guarded(server, PLATE, clock)
    try:
        assert (inverter.telemetry, inverter.setpoint_w, inverter.failure, inverter.last_success) == (
            None,
            None,
            None,
            None,
        )
        sample = await inverter.read_telemetry()
        assert inverter.telemetry == sample and inverter.last_success == clock.t
        assert await inverter.set_active_power(2500.0) == inverter.setpoint_w == 2500.0
        await server.cut()
        clock.advance(5.0)
        with pytest.raises(HalError):
            await inverter.read_telemetry()
        assert inverter.failure and inverter.last_success == clock.t - 5.0
        assert inverter.telemetry == sample  # the last good reading stays shown
        await server.restore()
        clock.advance(5.0)
        again = await eventually_read(inverter)  # the bus reconnects after its short backoff
        assert inverter.failure is None and inverter.telemetry == again and inverter.last_success == clock.t
        await inverter.release()
        assert inverter.setpoint_w is None
    finally:
        await inverter.close()
