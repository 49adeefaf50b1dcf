"""RS-485 bus time of a setpoint (SunSpec 704) and of the live-ratings read (702), at 9600 and 19200 baud.

The frames are real: a SunSpec inverter talks RTU framing to the in-process simulator (over a TCP
socket, so without baud-rate pacing) and the bus counts every request and reply byte. From those
counts two figures are computed per baud rate:

* bus time: the bytes at 11 bits per character (8 data bits with parity or a second stop bit, the
  slower of the usual settings) plus the silence the bus keeps before each request (`ModbusBus.gap_s`,
  at least 20 ms);
* frame-time floor: the pure wire time, the bytes plus the 3.5-character gap before every frame
  (request and reply), as in the Modbus serial-line spec (field-notes' frame-time table).

The device's own turnaround (typically 5-45 ms per request) is excluded from both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.common import Row
from hal.clock import utc_now
from hal.inverter import BatterySpec, InverterSettings
from hal.inverter.settings import SetpointMode
from hal.inverter.sunspec import SunSpecInverter
from hal.modbus import BusSettings, ModbusBus, SerialSettings
from wattsmart_lab.sunspec_server import SunSpecServer

BAUDS = (9600, 19200)
BITS_PER_CHAR = 11
GAP_CHARS = 3.5
SETPOINTS = 20
RATINGS_PER_HOUR = 60  # the live-ratings read, once a minute
RATINGS_FIRST, RATINGS_LAST = 2, 45  # 702 offsets: WMaxRtg .. W_SF
TARGET_S = 0.250
BUS = BusSettings(timeout_s=1.0, retries=1, settle_after_connect_s=0.0)


@dataclass(frozen=True)
class Frames:
    """Requests and wire bytes (request + reply frames) of one operation."""

    requests: float
    wire_bytes: float

    def __add__(self, other: Frames) -> Frames:
        return Frames(self.requests + other.requests, self.wire_bytes + other.wire_bytes)

    def floor_s(self, baud: int) -> float:
        """Pure wire time: every byte, and a 3.5-character gap before each request and each reply."""
        char_s = BITS_PER_CHAR / baud
        return self.wire_bytes * char_s + 2 * self.requests * GAP_CHARS * char_s

    def bus_s(self, baud: int, gap_s: float) -> float:
        """Bus time as this gateway paces it: every byte, and its inter-frame gap before each request."""
        return self.wire_bytes * BITS_PER_CHAR / baud + self.requests * gap_s


def _gap_s(baud: int, bus: BusSettings) -> float:
    return ModbusBus(SerialSettings("/dev/null", baudrate=baud), bus).gap_s


async def _count(
    inverter: SunSpecInverter, action: Callable[[], Awaitable[object]], times: int = 1
) -> Frames:
    stats = inverter.bus.stats
    requests, wire = stats.requests, stats.tx_bytes + stats.rx_bytes
    for _ in range(times):
        await action()
    return Frames((stats.requests - requests) / times, (stats.tx_bytes + stats.rx_bytes - wire) / times)


async def _measure(mode: SetpointMode, *, refuse_block: bool = False) -> dict[str, Frames]:
    """Frames of the first setpoint, a steady one, a keepalive and a 702 read, in one setpoint mode."""
    async with SunSpecServer(BatterySpec(), framing="rtu") as server:
        if refuse_block:
            server.faults.max_write_registers = 2  # a device with a short FC16 limit
        serial = SerialSettings(server.serial_url, baudrate=BAUDS[0])
        settings = InverterSettings(transport="rtu", serial=serial, bus=BUS, setpoint_mode=mode)
        bus = ModbusBus(serial, BUS)
        inverter = SunSpecInverter(bus, settings, wall_clock=utc_now, on_close=bus.close)
        try:
            smap = await inverter.sunspec_map()
            await inverter.read_ratings()  # discovery and ratings are not part of a setpoint
            watts = iter([1000.0 if i % 2 else -1000.0 for i in range(2 * SETPOINTS + 1)])
            first = await _count(inverter, lambda: inverter.set_active_power(next(watts)))
            steady = await _count(inverter, lambda: inverter.set_active_power(next(watts)), SETPOINTS)
            keepalive = await _count(inverter, inverter.keepalive, SETPOINTS)
            start = smap.models[702].start + RATINGS_FIRST
            count = RATINGS_LAST - RATINGS_FIRST + 1
            ratings = await _count(inverter, lambda: bus.read(start, count, settings.device_id))
            await (
                inverter.read_telemetry()
            )  # the sampler's read, every 30 s on a box: it brings 713's capacity
            read_ratings = await _count(inverter, inverter.read_ratings)
            await inverter.release()
        finally:
            await inverter.close()
    return {
        "first": first,
        "steady": steady,
        "keepalive": keepalive,
        "ratings": ratings,
        "read_ratings": read_ratings,
    }


def _rows(watts: dict[str, Frames], percent: dict[str, Frames], points: dict[str, Frames]) -> list[Row]:
    rows: list[Row] = []
    ratings = watts["ratings"]
    cases = (
        (
            "setpoint",
            watts["steady"],
            "one setpoint (watts mode): FC16 of 704 offsets 22..32 + read-back 22..25",
        ),
        (
            "setpoint_with_702",
            watts["steady"] + ratings,
            "live-rating check included: 702 read (offsets 2..45) + setpoint (watts mode)",
        ),
        (
            "setpoint_percent_with_702",
            percent["steady"] + ratings,
            "702 read + setpoint in percent mode (read-back 22..28)",
        ),
        (
            "setpoint_with_read_ratings",
            watts["steady"] + watts["read_ratings"],
            "setpoint after SunSpecInverter.read_ratings() as the guard calls it (702 2..45; 713's "
            "capacity comes with the sampler's SoC read)",
        ),
        (
            "setpoint_first",
            watts["first"],
            "first setpoint after start or an error: + 704 control block read",
        ),
        ("keepalive", watts["keepalive"], "keepalive: the same FC16 + read-back 22..34 (revert timer)"),
        (
            "setpoint_points",
            points["steady"],
            "a device refusing the block write: one write per point + control read + read-back",
        ),
    )
    for baud in BAUDS:
        gap = _gap_s(baud, BUS)
        for name, frames, note in cases:
            bus_ms, floor_ms = frames.bus_s(baud, gap) * 1000, frames.floor_s(baud) * 1000
            verdict = ""
            if name.startswith("setpoint") and name not in ("setpoint_first", "setpoint_points"):
                met = "met" if bus_ms <= TARGET_S * 1000 else "NOT met"
                verdict = f"; target <= {TARGET_S * 1000:.0f} ms: {met}"
            rows.append(
                Row(
                    f"hal.{name}_bus_time_rtu_{baud}",
                    bus_ms,
                    "ms",
                    f"computed: {note}; {frames.requests:.0f} requests, {frames.wire_bytes:.0f} B, "
                    f"{gap * 1000:.0f} ms gap each; frame-time floor {floor_ms:.1f} ms{verdict}",
                )
            )
    gap = _gap_s(BAUDS[0], BUS)
    per_hour = RATINGS_PER_HOUR * ratings.bus_s(BAUDS[0], gap)
    rows.append(
        Row(
            f"hal.ratings_702_bus_time_per_hour_rtu_{BAUDS[0]}",
            per_hour,
            "s/h",
            f"computed: 702 offsets 2..45 read once a minute ({ratings.wire_bytes:.0f} B, "
            f"{ratings.bus_s(BAUDS[0], gap) * 1000:.0f} ms each, floor "
            f"{RATINGS_PER_HOUR * ratings.floor_s(BAUDS[0]):.1f} s/h) = {per_hour / 36:.2f} % of the line",
        )
    )
    built = watts["read_ratings"]
    rows.append(
        Row(
            f"hal.read_ratings_bus_time_per_hour_rtu_{BAUDS[0]}",
            RATINGS_PER_HOUR * built.bus_s(BAUDS[0], gap),
            "s/h",
            f"computed: read_ratings() once a minute as the guard calls it ({built.requests:.0f} request(s), "
            f"{built.wire_bytes:.0f} B, {built.bus_s(BAUDS[0], gap) * 1000:.0f} ms each); the SoC read "
            "grew by 2 registers (713 from WHRtg) to bring the capacity along",
        )
    )
    return rows


async def _all() -> list[Row]:
    return _rows(
        await _measure("watts"), await _measure("percent"), await _measure("watts", refuse_block=True)
    )


def run() -> list[Row]:
    """Measure the setpoint's and the ratings read's frames against the simulator and compute bus time."""
    return asyncio.run(_all())
