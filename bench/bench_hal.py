"""Hardware-layer figures: telemetry round trip and bus occupancy (TCP, RTU at 9600 baud), setpoint latency.

The setpoint's bus time at 9600/19200 baud is in `bench_setpoint_bus`.

Everything runs against the in-process SunSpec simulator on 127.0.0.1. RTU framing is carried over
a TCP socket (pyserial's socket:// URL), which has no baud-rate pacing: the 9600-baud occupancy is
computed from the RTU frame bytes counted by the bus (11 bits per character, i.e. 8 data bits with
parity or a second stop bit, the slower of the usual settings) plus the inter-frame gap the bus keeps.
The device's own turnaround time is not included (it depends on the inverter).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.common import Row
from hal.inverter import BatterySpec, InverterSettings, open_inverter
from hal.inverter.sunspec import SunSpecInverter
from hal.modbus import BusSettings, SerialSettings, TcpSettings
from wattsmart_lab.sunspec_server import SunSpecServer

CYCLES = 40
SETPOINTS = 20
BAUD = 9600
BITS_PER_CHAR = 11


async def _measure(framing: str) -> list[Row]:
    rows: list[Row] = []
    async with SunSpecServer(BatterySpec(), framing="rtu" if framing == "rtu" else "socket") as server:
        if framing == "rtu":
            bus = BusSettings(timeout_s=1.0, retries=1, settle_after_connect_s=0.0)
            settings = InverterSettings(
                transport="rtu", serial=SerialSettings(server.serial_url, baudrate=BAUD), bus=bus
            )
        else:
            settings = InverterSettings(
                transport="tcp", tcp=TcpSettings("127.0.0.1", server.port), bus=BusSettings(timeout_s=1.0)
            )
        async with open_inverter(settings, auto_keepalive=False) as inverter:
            device = inverter.inner  # the device behind the guard
            assert isinstance(device, SunSpecInverter)
            await inverter.read_ratings()  # discovery and ratings are not part of the cycle
            stats = device.bus.stats
            before = (stats.requests, stats.tx_bytes, stats.rx_bytes)
            times = []
            for _ in range(CYCLES):
                started = time.perf_counter()
                await inverter.read_telemetry()
                times.append(time.perf_counter() - started)
            requests = (stats.requests - before[0]) / CYCLES
            wire_bytes = (stats.tx_bytes - before[1] + stats.rx_bytes - before[2]) / CYCLES
            rows.append(
                Row(
                    f"hal.telemetry_rtt_{framing}",
                    statistics.median(times) * 1000,
                    "ms",
                    f"median of {CYCLES} read_telemetry() on loopback, p95 "
                    f"{statistics.quantiles(times, n=20)[18] * 1000:.2f} ms, {requests:.0f} requests/cycle",
                )
            )
            rows.append(
                Row(f"hal.telemetry_bytes_{framing}", wire_bytes, "bytes", "request + reply frames per cycle")
            )
            if framing == "rtu":
                gap = device.bus.gap_s
                wire_s = wire_bytes * BITS_PER_CHAR / BAUD
                busy_s = wire_s + requests * gap
                rows.append(
                    Row(
                        "hal.telemetry_bus_time_rtu_9600",
                        busy_s * 1000,
                        "ms",
                        f"computed: {wire_bytes:.0f} B x {BITS_PER_CHAR} bit / {BAUD} baud = "
                        f"{wire_s * 1000:.0f} ms + {requests:.0f} x {gap * 1000:.0f} ms gap; "
                        "device turnaround excluded",
                    )
                )
                rows.append(
                    Row(
                        "hal.telemetry_bus_occupancy_rtu_9600_1s",
                        busy_s * 100,
                        "%",
                        "share of a 1 s telemetry period the RS-485 line is busy (computed, as above)",
                    )
                )
            to_write, to_return = [], []
            for i in range(SETPOINTS):
                watts = 1000.0 if i % 2 else -1000.0
                count = len(server.device.writes)
                started = time.monotonic()
                await inverter.set_active_power(watts)
                to_return.append(time.monotonic() - started)
                enable_at = server.device.address(704, "WSetEna")
                live = [w.at for w in server.device.writes[count:] if w.address == enable_at]
                to_write.append(live[-1] - started)
            rows.append(
                Row(
                    f"hal.setpoint_to_register_{framing}",
                    statistics.median(to_write) * 1000,
                    "ms",
                    f"median, set_active_power() call to the 704 block write (enable, mode, value, revert "
                    f"timer in one request) in the simulator, {SETPOINTS} setpoints",
                )
            )
            rows.append(
                Row(
                    f"hal.setpoint_call_{framing}",
                    statistics.median(to_return) * 1000,
                    "ms",
                    "median, whole set_active_power() incl. read-back (RTU bus time: bench_setpoint_bus)",
                )
            )
            await inverter.release()
    return rows


async def _all() -> list[Row]:
    return [*(await _measure("tcp")), *(await _measure("rtu"))]


def run() -> list[Row]:
    """Measure the hardware layer against the loopback simulator."""
    return asyncio.run(_all())
