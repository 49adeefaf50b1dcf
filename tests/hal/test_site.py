"""Several inverters on one bus driven as one: the split, its re-split when one dies, SoC limits per
inverter, and one bus shared without interleaved frames (real Modbus TCP, and RTU over a pty pair)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hal.inverter import BatterySpec, InverterSettings, Nameplate, SafeInverter
from hal.inverter.factory import connect_site
from hal.inverter.site import RETRY_DEAD_S, SiteInverter, SocLimits, split_watts
from hal.modbus import SerialSettings, TcpSettings
from tests.hal.conftest import FAST_BUS, Monotonic
from tests.hal.pty_bridge import PtyBridge
from wattsmart_lab.sunspec_server import SunSpecServer

BIG = BatterySpec(ramp_w_per_s=1e6, max_w=5000.0, max_charge_w=5000.0, max_discharge_w=5000.0)
SMALL = BatterySpec(
    ramp_w_per_s=1e6, max_w=3000.0, max_charge_w=3000.0, max_discharge_w=3000.0, capacity_wh=6000.0
)


def member_settings(server: SunSpecServer, unit: int, **kw: object) -> InverterSettings:
    """One member reached over the server's TCP endpoint (every member: the same endpoint)."""
    return InverterSettings(
        transport="tcp",
        tcp=TcpSettings("127.0.0.1", server.port),
        device_id=unit,
        **{"bus": FAST_BUS, **kw},  # type: ignore[arg-type]
    )


def held_w(server: SunSpecServer, unit: int) -> float:
    """The setpoint the simulated inverter at `unit` holds (0 in its own mode)."""
    return server.unit(unit).battery.target_w or 0.0


def site_of(inverter: SafeInverter) -> SiteInverter:
    assert isinstance(inverter.inner, SiteInverter)
    return inverter.inner


@pytest.fixture
async def two(sim_clock: Monotonic) -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer.site([BIG, SMALL], clock=sim_clock) as server:
        yield server


def test_split_is_proportional_within_each_room_and_sums_to_the_watts() -> None:
    assert split_watts(4000.0, [5000.0, 3000.0]) == [2500.0, 1500.0]
    assert split_watts(-1000.0, [5000.0, 3000.0]) == [-625.0, -375.0]
    shares = split_watts(1001.0, [1000.0, 1000.0, 1000.0])
    assert sum(shares) == 1001.0 and all(0 <= s <= 1000.0 for s in shares)
    assert split_watts(9000.0, [5000.0, 3000.0]) == [5000.0, 3000.0]  # never beyond a room
    assert split_watts(4000.0, [0.0, 3000.0]) == [0.0, 3000.0]
    assert split_watts(4000.0, [0.0, 0.0]) == [0.0, 0.0]


async def test_ratings_sum_and_telemetry_combines(two: SunSpecServer, sim_clock: Monotonic) -> None:
    two.unit(2).battery._soc_pct = 80.0
    inverter = await connect_site([member_settings(two, 1), member_settings(two, 2)])
    async with inverter:
        ratings = await inverter.read_ratings()
        assert ratings.discharge_limit_w() == 8000.0
        assert ratings.charge_limit_w() == 8000.0
        assert ratings.energy_capacity_wh == 16000.0
        await inverter.set_active_power(-1600.0)
        sim_clock.advance(2)
        sample = await inverter.read_telemetry()
        site = site_of(inverter)
        parts = [m.telemetry for m in site.members]
        assert all(p is not None and p.w is not None for p in parts)
        assert sample.w == sum(p.w for p in parts if p is not None and p.w is not None) == -1600.0
        socs = [p.soc_pct for p in parts if p is not None]
        assert socs[0] is not None and socs[1] is not None
        # energy-weighted: 10 kWh and 6 kWh
        assert sample.soc_pct == pytest.approx((10000 * socs[0] + 6000 * socs[1]) / 16000)
        assert sample.hz is not None and 59 < sample.hz < 61


async def test_half_discharge_is_split_in_proportion_and_one_dying_moves_its_share(
    two: SunSpecServer, sim_clock: Monotonic
) -> None:
    inverter = await connect_site([member_settings(two, 1), member_settings(two, 2)], monotonic=sim_clock)
    async with inverter:
        ratings = await inverter.read_ratings()
        limit = ratings.discharge_limit_w()
        assert limit is not None
        event = 0.5 * limit  # +50 % of the site's discharge rate (opModFixedW 5000)
        held = await inverter.set_active_power(event)
        assert held == event == 4000.0
        assert (held_w(two, 1), held_w(two, 2)) == (2500.0, 1500.0)
        assert held_w(two, 1) + held_w(two, 2) == event
        # unit 2 dies: the next reading (one cycle) moves its share to unit 1
        two.unit(2).faults.silent = True
        sample = await inverter.read_telemetry()
        assert held_w(two, 1) == 4000.0 <= BIG.max_discharge_w
        # the site's power without unit 2 is a partial sum: questionable, never clean
        assert sample.w is None and "w" in sample.suspect
        site = site_of(inverter)
        assert "inverter[1] (unit 2)" in site.problems
        assert [m.available for m in site.members] == [True, False]
        assert [m.share_w for m in site.members] == [4000.0, None]
        # a full-rate event now: unit 1 alone, never beyond its own ceiling
        assert await inverter.set_active_power(limit) == BIG.max_discharge_w
        assert held_w(two, 1) == BIG.max_discharge_w
        # unit 2 answers again: not asked before RETRY_DEAD_S (each try holds the bus), then it is
        two.unit(2).faults.silent = False
        writes = len(two.unit(2).writes)
        sim_clock.advance(RETRY_DEAD_S - 1)
        await inverter.read_telemetry()
        assert len(two.unit(2).writes) == writes and not site.members[1].available
        sim_clock.advance(1)
        await inverter.read_telemetry()
        assert (held_w(two, 1), held_w(two, 2)) == (5000.0, 3000.0)
        assert site.problems == {}
        sim_clock.advance(1)
        assert (await inverter.read_telemetry()).w == 8000.0
        await inverter.release()
        assert held_w(two, 1) == held_w(two, 2) == 0.0


async def test_each_share_stays_within_its_own_nameplate(two: SunSpecServer) -> None:
    plate = Nameplate(max_discharge_w=2000.0, max_charge_w=2000.0)
    inverter = await connect_site([member_settings(two, 1, nameplate=plate), member_settings(two, 2)])
    async with inverter:
        held = await inverter.set_active_power(20_000.0)
        # unit 1 is held to its nameplate (its guard), unit 2 to its rating; the site to neither more
        assert (held_w(two, 1), held_w(two, 2)) == (2000.0, 3000.0)
        assert held == 5000.0


async def test_soc_limits_hold_per_inverter(two: SunSpecServer, sim_clock: Monotonic) -> None:
    two.unit(1).battery._soc_pct = 4.0
    two.unit(2).battery._soc_pct = 99.5
    inverter = await connect_site(
        [member_settings(two, 1), member_settings(two, 2)], soc=SocLimits(min_pct=5.0, max_pct=99.0)
    )
    async with inverter:
        await inverter.read_telemetry()
        # discharge: only unit 2 (unit 1 is at its minimum)
        assert await inverter.set_active_power(2000.0) == 2000.0
        assert (held_w(two, 1), held_w(two, 2)) == (0.0, 2000.0)
        # charge: only unit 1 (unit 2 is at its maximum)
        assert await inverter.set_active_power(-2000.0) == -2000.0
        assert (held_w(two, 1), held_w(two, 2)) == (-2000.0, 0.0)
        # unit 1 charges past 5 %: the next reading gives it a share of a discharge again
        await inverter.set_active_power(1000.0)
        assert held_w(two, 1) == 0.0
        two.unit(1).battery._soc_pct = 30.0
        sim_clock.advance(1)
        await inverter.read_telemetry()
        assert held_w(two, 1) > 0 and held_w(two, 1) + held_w(two, 2) == 1000.0


async def test_every_member_dead_is_unreachable(two: SunSpecServer) -> None:
    from hal.errors import InverterUnreachable

    inverter = await connect_site([member_settings(two, 1), member_settings(two, 2)])
    async with inverter:
        await inverter.read_ratings()
        for unit in (1, 2):
            two.unit(unit).faults.silent = True
        with pytest.raises(InverterUnreachable):
            await inverter.inner.read_telemetry()
        with pytest.raises(InverterUnreachable):
            await inverter.set_active_power(1000.0)


class WireTap(PtyBridge):
    """The pty cable, recording every chunk that crosses it: (direction, bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[tuple[str, bytes]] = []

    def _copy(self, src: int, dst: int) -> None:
        import os

        try:
            data = os.read(src, 4096)
        except OSError:
            return
        if data:
            self.chunks.append(("request" if src == self._m2 else "reply", data))
            os.write(dst, data)


async def test_one_rtu_bus_is_shared_without_interleaved_frames(sim_clock: Monotonic) -> None:
    tap = WireTap()
    tap.start()
    try:
        async with SunSpecServer.site(
            [BIG, SMALL], clock=sim_clock, framing="rtu", serial_port=tap.server_port
        ) as server:
            link = SerialSettings(tap.client_port, baudrate=9600)
            members = [InverterSettings("rtu", serial=link, device_id=u, bus=FAST_BUS) for u in (1, 2)]
            inverter = await connect_site(members)
            async with inverter:
                site = site_of(inverter)
                buses = {id(m.guard.inner.bus) for m in site.members}  # type: ignore[attr-defined]
                assert len(buses) == 1  # one connection for the port
                # many tasks at once, on both members: the bus serialises them
                await inverter.read_ratings()
                await asyncio.gather(
                    inverter.set_active_power(4000.0),
                    *(m.guard.read_telemetry() for m in site.members for _ in range(3)),
                    inverter.read_telemetry(),
                )
                assert held_w(server, 1) + held_w(server, 2) == 4000.0
    finally:
        tap.close()
    # Group the chunks into turns: every request is followed by its reply before the next request.
    turns: list[tuple[str, bytes]] = []
    for direction, data in tap.chunks:
        if turns and turns[-1][0] == direction:
            turns[-1] = (direction, turns[-1][1] + data)
        else:
            turns.append((direction, data))
    assert len(turns) > 10
    assert [d for d, _ in turns] == ["request", "reply"] * (len(turns) // 2)
    for (_, request), (_, reply) in zip(turns[::2], turns[1::2], strict=True):
        # each turn is exactly one frame (two frames back to back would fail the CRC of the whole)
        assert crc_ok(request) and crc_ok(reply)
        assert request[0] == reply[0] in (1, 2)  # the reply comes from the unit asked


def crc_ok(frame: bytes) -> bool:
    """Whether `frame` is one RTU frame: its last two bytes are the Modbus CRC of the rest."""
    crc = 0xFFFF
    for byte in frame[:-2]:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return len(frame) >= 4 and frame[-2:] == crc.to_bytes(2, "little")


async def test_limits_are_split_like_setpoints_and_each_member_holds_its_part(
    two: SunSpecServer, sim_clock: Monotonic
) -> None:
    for unit in (1, 2):
        two.unit(unit).battery.own_w = 2500.0  # each battery's own mode covers a house load
    inverter = await connect_site([member_settings(two, 1), member_settings(two, 2)])
    async with inverter:
        assert await inverter.apply_limits(2400.0, None) is True
        sim_clock.advance(1)
        for unit in (1, 2):
            assert two.unit(unit).get(704, "WMaxLimPctEna") == 1
            assert two.unit(unit).get(704, "WSetEna") == 0  # no setpoint: each keeps its own mode
        # 2400 W in proportion to 5000 : 3000, each under its cap
        assert (await inverter.read_telemetry()).w == pytest.approx(1500 + 900, abs=2)
        await inverter.release()
        assert two.unit(1).get(704, "WMaxLimPctEna") == two.unit(2).get(704, "WMaxLimPctEna") == 0
