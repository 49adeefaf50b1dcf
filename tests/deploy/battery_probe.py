"""Read or set the simulated battery's SunSpec setpoint over Modbus TCP; runs inside the test container.

    python battery_probe.py read [--port 5020]          prints {"WSetEna": 0|1, "WSet_W": ..., "W": ...}
    python battery_probe.py hold WATTS [--port 5020]    enables a WATTS setpoint with no revert timer

Deliberately independent of hal/: it walks the SunSpec model chain from 40000 itself and uses the
offsets of the SunSpec information model (701 DER AC measurement, 704 DER AC controls).
"""

from __future__ import annotations

import argparse
import json
import sys

from pymodbus.client import ModbusTcpClient

BASE = 40000
SUNS = [0x5375, 0x6E53]
END = 0xFFFF
# Offsets from the model's ID register (SunSpec models 701 and 704).
W_701, W_SF_701 = 10, 116
WSET_ENA, WSET_MOD, WSET, WSET_RVRT_TMS, WSET_SF = 22, 23, 24, 31, 55


def _s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def _s32(hi: int, lo: int) -> int:
    value = (hi << 16) | lo
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


class Probe:
    def __init__(self, port: int, device_id: int) -> None:
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
        self.device_id = device_id
        if not self.client.connect():
            raise SystemExit(f"battery_probe: cannot connect to 127.0.0.1:{port}")
        self.models = self._walk()

    def regs(self, address: int, count: int) -> list[int]:
        result = self.client.read_holding_registers(address, count=count, device_id=self.device_id)
        if result.isError():
            raise SystemExit(f"battery_probe: read {address}+{count} failed: {result}")
        return list(result.registers)

    def write(self, address: int, values: list[int]) -> None:
        result = self.client.write_registers(address, values, device_id=self.device_id)
        if result.isError():
            raise SystemExit(f"battery_probe: write {address} failed: {result}")

    def _walk(self) -> dict[int, int]:
        if self.regs(BASE, 2) != SUNS:
            raise SystemExit("battery_probe: no SunSpec marker at 40000")
        models: dict[int, int] = {}
        address = BASE + 2
        while True:
            model_id, length = self.regs(address, 2)
            if model_id == END:
                return models
            models[model_id] = address
            address += 2 + length

    def read(self) -> dict[str, float]:
        m701, m704 = self.models[701], self.models[704]
        w_raw, w_sf = self.regs(m701 + W_701, 1)[0], _s16(self.regs(m701 + W_SF_701, 1)[0])
        ena, mod, hi, lo = self.regs(m704 + WSET_ENA, 4)
        wset_sf = _s16(self.regs(m704 + WSET_SF, 1)[0])
        return {
            "WSetEna": ena,
            "WSetMod": mod,
            "WSet_W": _s32(hi, lo) * 10.0**wset_sf,
            "W": _s16(w_raw) * 10.0**w_sf,
        }

    def hold(self, watts: float) -> None:
        m704 = self.models[704]
        wset_sf = _s16(self.regs(m704 + WSET_SF, 1)[0])
        raw = round(watts / 10.0**wset_sf) & 0xFFFF_FFFF
        self.write(m704 + WSET_RVRT_TMS, [0, 0])  # no device-side revert: only a release clears it
        self.write(m704 + WSET, [raw >> 16, raw & 0xFFFF])
        self.write(m704 + WSET_MOD, [1])  # watts
        self.write(m704 + WSET_ENA, [1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["read", "hold"])
    parser.add_argument("watts", nargs="?", type=float, default=-2000.0)
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument("--device-id", type=int, default=1)
    args = parser.parse_args()
    probe = Probe(args.port, args.device_id)
    try:
        if args.action == "hold":
            probe.hold(args.watts)
        json.dump(probe.read(), sys.stdout)
        print()
    finally:
        probe.client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
