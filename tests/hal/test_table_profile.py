"""Register-table profiles: the shipped example against a non-SunSpec Modbus device, and validation errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

import hal.inverter
from hal.errors import ProfileError
from hal.inverter import InverterSettings, OperatingStatus, connect_inverter, open_inverter
from hal.inverter.table import TableInverter
from hal.inverter.table_profile import load_profile, parse_profile
from hal.modbus import TcpSettings
from tests.hal.conftest import FAST_BUS

_Values = list[int] | list[bool] | None
EXAMPLE = Path(hal.inverter.__file__).parent / "profiles" / "example-hybrid.yaml"


class VendorDevice:
    """A non-SunSpec map shaped like the example profile, with gaps between register blocks."""

    def __init__(self) -> None:
        self.input = [0] * 39  # 13000..13038
        self.input[33 - 0] = 1500  # 13033/13034 int32, low word first: charging 1500 W (vendor sign)
        self.input[22] = 655  # 13022 SoC 65.5 %
        self.input[38] = 100  # 13038 capacity 100 x 100 Wh
        self.ems = [0, 0xCC, 0, 0]  # 13049..13052
        self.limits = [300, 400, 0, 0, 500, 1]  # 33046..33051
        self.writes: list[tuple[int, list[int]]] = []
        self.pokes: dict[int, int] = {}
        self.function_codes: dict[int, int] = {}
        self._regs: list[int] = []
        self._start = 0

    def live(self, address: int, count: int = 1) -> list[int]:
        """Current register values as the server holds them (pymodbus keeps its own copy)."""
        return self._regs[address - self._start : address - self._start + count]

    def device(self) -> SimDevice:
        async def action(
            fc: int,
            start: int,
            address: int,
            count: int,
            regs: list[int],
            values: list[int] | list[bool] | None,
        ) -> None:
            self._regs, self._start = regs, start
            for at, value in self.pokes.items():
                regs[at - start] = value
            self.pokes.clear()
            if values is not None:
                self.writes.append((address, [int(v) for v in values]))
                self.function_codes[address] = fc

        return SimDevice(
            id=1,
            simdata=[
                SimData(5035, values=[600], datatype=DataType.REGISTERS),
                SimData(13000, values=self.input, datatype=DataType.REGISTERS),
                SimData(13049, values=self.ems, datatype=DataType.REGISTERS),
                SimData(33046, values=self.limits, datatype=DataType.REGISTERS),
            ],
            action=action,
        )


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[VendorDevice, int]]:
    dev = VendorDevice()
    server = ModbusTcpServer(dev.device(), address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    port = int(server.transport.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    yield dev, port
    await server.shutdown()  # type: ignore[no-untyped-call]


def settings(port: int, profile: Path = EXAMPLE) -> InverterSettings:
    return InverterSettings(
        transport="tcp",
        tcp=TcpSettings("127.0.0.1", port),
        profile=str(profile),
        bus=FAST_BUS,
        revert_timeout_s=60,
    )


def test_example_profile_is_valid() -> None:
    profile = load_profile(EXAMPLE)
    assert profile.name == "example-hybrid"
    assert profile.points["w"].word_order == "little"
    assert [s.address for s in profile.writes["set_active_power"]] == [13050, 13051, 13052, 13049]


async def test_reads_a_non_sunspec_map(vendor: tuple[VendorDevice, int]) -> None:
    dev, port = vendor
    async with open_inverter(settings(port), auto_keepalive=False) as inverter:
        device = inverter.inner  # the device behind the guard
        assert isinstance(device, TableInverter)
        ratings = await inverter.read_ratings()
        assert (ratings.max_w, ratings.max_charge_w, ratings.max_discharge_w) == (5000.0, 3000.0, 4000.0)
        assert ratings.energy_capacity_wh == 10000.0
        assert ratings.set_max_w == 5000.0  # 500 x 10^1 from its scale-factor register
        t = await inverter.read_telemetry()
        assert t.w == -1500.0
        assert t.hz == pytest.approx(60.0)
        assert t.soc_pct == pytest.approx(65.5)
        assert t.operating is OperatingStatus.RUNNING
        dev.pokes[13022] = 0xFFFF  # "not implemented"
        dev.pokes[5035] = 0x7FFF  # the profile's own "invalid" code
        t = await inverter.read_telemetry()
        assert (t.soc_pct, t.hz, t.w) == (None, None, -1500.0)


async def test_writes_sequences_and_reads_back(vendor: tuple[VendorDevice, int]) -> None:
    dev, port = vendor
    async with open_inverter(settings(port), auto_keepalive=False) as inverter:
        assert await inverter.set_active_power(-2000.4) == -2000.0
        assert dev.writes == [(13050, [0xAA]), (13051, [2000]), (13052, [60]), (13049, [2])]
        assert dev.function_codes == {13050: 16, 13051: 16, 13052: 6, 13049: 16}
        assert await inverter.set_active_power(9000.0) == 4000.0  # clamped to max discharge
        assert dev.live(13049, 4) == [2, 0xBB, 4000, 60]
        dev.writes.clear()
        await inverter.keepalive()
        assert dev.writes == [(13052, [60])]
        await inverter.release()
        assert dev.live(13049, 2) == [0, 0xCC]


BROKEN = """\
profile: broken
points:
  w: {address: 100, type: int16}
  hz:
    address: 101
    type: uint17
writes:
  set_active_power:
    - {address: 200, type: uint16, value: watts}
  release:
    - {address: 201, type: uint16, value: 0}
"""


def test_broken_profile_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "vendor.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"{path}:6: points.hz.type: expected one of int16, uint16")
    assert "uint17" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("points: [1, 2\n", "<p>:2: not valid YAML"),
        ("points:\n  w: {address: 1, type: int16}\n", "<p>:1: writes: expected a mapping"),
        ("points:\n  watts: {address: 1, type: int16}\nwrites: {}\n", "<p>:2: points.watts: unknown point"),
        (
            "points:\n  w: {address: 70000, type: int16}\nwrites: {}\n",
            "<p>:2: points.w.address: expected a register address",
        ),
        (
            "points:\n  w: {address: 1, type: int16}\nwrites:\n  set_active_power:\n"
            "    - {address: 2, type: uint16, value: wats}\n",
            "<p>:5: writes.set_active_power.0.value: unknown value 'wats'",
        ),
        (
            "points:\n  w: {address: 1, type: int16}\nwrites:\n  set_active_power:\n"
            "    - {address: 2, type: uint16, value: watts}\n",
            "<p>:3: writes: the write sequence 'release' is required",
        ),
    ],
)
def test_validation_messages(text: str, expected: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "<p>")
    assert str(info.value).startswith(expected), str(info.value)


async def test_missing_profile_file_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile"):
        await connect_inverter(settings(1502, tmp_path / "nope.yaml"))


def test_shipped_profile_by_name() -> None:
    assert load_profile("example-hybrid").name == "example-hybrid"
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile("no-such-inverter")
