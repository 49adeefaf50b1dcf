"""A simulated SunSpec battery inverter as a register image: the battery model behind models
1/701/702/704/713 (optionally 802), or the legacy 1/103/120/121/124 set.

No sockets here: `SunSpecDevice.on_access` is what the Modbus server calls on every request, and
tests may call it directly. Time is a parameter (`now`, seconds on a monotonic scale).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from hal.inverter import codec
from hal.inverter.battery import BatterySpec
from hal.inverter.sunspec_points import END_MODEL_ID, LENGTHS, POINTS, SUNS_MARKER
from wattsmart_lab.battery import BatteryModel

_LOGGER = logging.getLogger(__name__)

DER_MODELS = (1, 701, 702, 704, 713)
LEGACY_MODELS = (1, 103, 120, 121, 124)

# Scale factors the simulator publishes: non-zero where it exercises the client's scaling.
_HZ_SF = -3
_PCT_SF = -1
_WSETPCT_SF = -2
_WMAXLIMPCT_SF = -1
_LEGACY_HZ_SF = -2
_RTE_SF = -2

# Points a client may write (SunSpec access "RW"; the test suite checks this against pysunspec2).
# Every other point this project knows, the model headers and the "SunS" marker are read-only:
# a write touching one is refused whole with "illegal data address", as a real device does.
WRITABLE: dict[int, frozenset[str]] = {
    702: frozenset({"WMax", "WChaRteMax", "WDisChaRteMax"}),
    704: frozenset(
        {
            "WMaxLimPctEna",
            "WMaxLimPct",
            "WMaxLimPctRvrt",
            "WMaxLimPctEnaRvrt",
            "WMaxLimPctRvrtTms",
            "WSetEna",
            "WSetMod",
            "WSet",
            "WSetRvrt",
            "WSetPct",
            "WSetPctRvrt",
            "WSetEnaRvrt",
            "WSetRvrtTms",
            "WRmp",
        }
    ),
    121: frozenset({"WMax"}),
    124: frozenset({"WChaMax", "StorCtl_Mod", "OutWRte", "InWRte", "InOutWRte_RvrtTms"}),
}
# enum16 points whose only values are 0 and 1; anything else is "illegal data value".
_BINARY = {704: ("WSetEna", "WSetMod", "WSetEnaRvrt", "WMaxLimPctEna", "WMaxLimPctEnaRvrt")}
ILLEGAL_ADDRESS, ILLEGAL_VALUE = 2, 3


@dataclass
class WriteRecord:
    """One register write the device received, with the time it arrived."""

    at: float
    address: int
    values: list[int]


@dataclass
class Faults:
    """Fault injection switches; the server reads them on every request."""

    silent: bool = False
    exception_code: int | None = None
    delay_s: float = 0.0
    garbage: bool = False
    ignore_writes: bool = False
    read_only: frozenset[int] = frozenset()
    """Addresses whose writes are refused with "illegal data address" (an unimplemented point)."""
    pinned: dict[tuple[int, str], float] = field(default_factory=dict)
    """Points stuck at a raw value (model, name) -> value, e.g. SoC 2000 (200 %), a W_SF of 0x8000."""
    max_write_registers: int | None = None
    """Longest FC16 write the device takes; longer ones get "illegal data value" (a short FC16 limit)."""


@dataclass
class SunSpecDevice:
    """Register image plus behaviour of one simulated SunSpec battery inverter."""

    spec: BatterySpec = field(default_factory=BatterySpec)
    models: tuple[int, ...] = DER_MODELS
    base: int = 40000
    device_id: int = 1
    start: float = 0.0
    faults: Faults = field(default_factory=Faults)
    end_marker: bool = True

    def __post_init__(self) -> None:
        self.battery = BatteryModel(self.spec, self.start)
        self.layout: dict[int, int] = {}
        self.regs: list[int] = list(SUNS_MARKER)
        for model_id in self.models:
            self.layout[model_id] = self.base + len(self.regs)
            self.regs += [model_id, LENGTHS[model_id]] + [0] * LENGTHS[model_id]
        if self.end_marker:
            self.regs += [END_MODEL_ID, 0]
        self.writes: list[WriteRecord] = []
        self._timer_running = False
        self._absent: list[tuple[int, str]] = []
        self._read_only = self._read_only_addresses()
        self._w_sf = _sf_for(max(self.spec.max_w, self.spec.max_charge_w, self.spec.max_discharge_w))
        self._wh_sf = _sf_for(self.spec.capacity_wh)
        self._init_static()
        self._publish(self.start)

    def set_ratings(
        self,
        *,
        max_w: float | None = None,
        max_charge_w: float | None = None,
        max_discharge_w: float | None = None,
    ) -> None:
        """Change ratings at run time (an installer's new WMax, a derating); None keeps a rating.

        The battery follows the new ratings and the rating registers show them (same scale factors).
        """
        spec = self.spec
        self.spec = replace(
            spec,
            max_w=spec.max_w if max_w is None else max_w,
            max_charge_w=spec.max_charge_w if max_charge_w is None else max_charge_w,
            max_discharge_w=spec.max_discharge_w if max_discharge_w is None else max_discharge_w,
        )
        self.battery.spec = self.spec
        self._publish_ratings()
        self._pin()

    # -- addressing -------------------------------------------------------------------------

    def address(self, model_id: int, name: str) -> int:
        """Absolute PDU address of a point."""
        return self.layout[model_id] + POINTS[model_id][name].offset

    def get(self, model_id: int, name: str) -> float | int | None:
        """Decoded raw value of a point (no scale factor applied)."""
        pt = POINTS[model_id][name]
        at = self.address(model_id, name) - self.base
        return codec.decode(self.regs[at : at + codec.size_of(pt.kind)], pt.kind)

    def set(self, model_id: int, name: str, value: float) -> None:
        """Encode a raw value into a point."""
        pt = POINTS[model_id][name]
        at = self.address(model_id, name) - self.base
        words = codec.encode(value, pt.kind)
        self.regs[at : at + len(words)] = words

    def _set_string(self, model_id: int, offset: int, text: str, size: int = 16) -> None:
        data = text.encode("ascii")[: size * 2].ljust(size * 2, b"\0")
        at = self.layout[model_id] + offset - self.base
        self.regs[at : at + size] = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]

    def _has(self, model_id: int) -> bool:
        return model_id in self.layout

    def _read_only_addresses(self) -> frozenset[int]:
        fixed = {self.base, self.base + 1}
        for model_id, start in self.layout.items():
            fixed |= {start, start + 1}
            for name, pt in POINTS[model_id].items():
                if name not in WRITABLE.get(model_id, ()):
                    size = 16 if pt.kind == "string16" else codec.size_of(pt.kind)
                    fixed |= set(range(start + pt.offset, start + pt.offset + size))
        return frozenset(fixed)

    def unimplement(self, model_id: int, *names: str) -> None:
        """Make points absent, as an optional point on a real device: they read as their sentinel and
        refuse writes."""
        for name in names:
            pt = POINTS[model_id][name]
            start = self.address(model_id, name)
            self._read_only |= set(range(start, start + codec.size_of(pt.kind)))
            self._absent.append((model_id, name))
        self._blank_absent()

    def refuses_write(self, address: int, values: list[int]) -> int | None:
        """The Modbus exception code a real device answers this write with, or None if it takes it.

        A refused write changes nothing: a device checks the whole request before applying it.
        """
        touched = set(range(address, address + len(values)))
        if (self._read_only | self.faults.read_only) & touched:
            return ILLEGAL_ADDRESS
        limit = self.faults.max_write_registers
        if limit is not None and len(values) > limit:
            return ILLEGAL_VALUE
        for model_id, names in _BINARY.items():
            for name in names if self._has(model_id) else ():
                at = self.address(model_id, name)
                if at in touched and values[at - address] not in (0, 1):
                    return ILLEGAL_VALUE
        return None

    # -- image ------------------------------------------------------------------------------

    def _init_static(self) -> None:
        spec = self.spec
        self._set_string(1, 2, "Wattsmart")
        self._set_string(1, 18, "SimBattery")
        self._set_string(1, 50, f"SIM-{self.device_id:04d}")
        self.regs[self.layout[1] + 66 - self.base] = self.device_id  # 1.DA
        if self._has(701):
            for name, sf in (("W_SF", self._w_sf), ("Hz_SF", _HZ_SF)):
                self.set(701, name, sf)
            self.regs[self.layout[701] + 2 - self.base] = 1  # ACType: single phase
        self._publish_ratings()
        if self._has(704):
            self.set(704, "WSet_SF", self._w_sf)
            self.set(704, "WSetPct_SF", _WSETPCT_SF)
            self.set(704, "WSetMod", 1)
            self.set(704, "WRmp", 100)
            self.set(704, "WMaxLimPct_SF", _WMAXLIMPCT_SF)
            self.set(704, "WMaxLimPct", 100 / 10.0**_WMAXLIMPCT_SF)
            self.set(704, "WMaxLimPctRvrt", 100 / 10.0**_WMAXLIMPCT_SF)
        if self._has(713):
            self.set(713, "WH_SF", self._wh_sf)
            self.set(713, "Pct_SF", _PCT_SF)
            self.set(713, "WHRtg", spec.capacity_wh / 10.0**self._wh_sf)
        if self._has(802):
            self.set(802, "WHRtg_SF", self._wh_sf)
            self.set(802, "WChaDisChaMax_SF", self._w_sf)
            self.set(802, "SoC_SF", _PCT_SF)
            self.set(802, "WHRtg", spec.capacity_wh / 10.0**self._wh_sf)
        if self._has(103):
            self.set(103, "W_SF", self._w_sf)
            self.set(103, "Hz_SF", _LEGACY_HZ_SF)
        if self._has(120):
            self.set(120, "DERTyp", 82)  # PV_STOR
            self.set(120, "WHRtg_SF", self._wh_sf)
            self.set(120, "WHRtg", spec.capacity_wh / 10.0**self._wh_sf)
        if self._has(124):
            self.set(124, "ChaState_SF", _PCT_SF)
            self.set(124, "InOutWRte_SF", _RTE_SF)
            self.set(124, "OutWRte", 10000)
            self.set(124, "InWRte", 10000)

    def _publish_ratings(self) -> None:
        """Write the ratings and rating settings of every model present."""
        spec = self.spec
        w_div = 10.0**self._w_sf
        if self._has(702):
            self.set(702, "W_SF", self._w_sf)
            for name, value in (
                ("WMaxRtg", spec.max_w),
                ("WChaRteMaxRtg", spec.max_charge_w),
                ("WDisChaRteMaxRtg", spec.max_discharge_w),
                ("WMax", spec.max_w),
                ("WChaRteMax", spec.max_charge_w),
                ("WDisChaRteMax", spec.max_discharge_w),
            ):
                self.set(702, name, value / w_div)
        if self._has(802):
            self.set(802, "WChaRteMax", spec.max_charge_w / w_div)
            self.set(802, "WDisChaRteMax", spec.max_discharge_w / w_div)
        if self._has(120):
            for name, value in (
                ("WRtg", spec.max_w),
                ("MaxChaRte", spec.max_charge_w),
                ("MaxDisChaRte", spec.max_discharge_w),
            ):
                self.set(120, f"{name}_SF", self._w_sf)
                self.set(120, name, value / w_div)
        if self._has(121):
            self.set(121, "WMax_SF", self._w_sf)
            self.set(121, "WMax", spec.max_w / w_div)
        if self._has(124):
            self.set(124, "WChaMax_SF", self._w_sf)
            self.set(124, "WChaMax", spec.max_charge_w / w_div)

    def _pin(self) -> None:
        for (model_id, name), value in self.faults.pinned.items():
            if self._has(model_id):
                self.set(model_id, name, value)

    def _publish(self, now: float) -> None:
        """Write the battery's live values into the image."""
        b = self.battery
        w_div = 10.0**self._w_sf
        power = round(b.power_w / w_div)
        running = abs(b.power_w) > 0.5
        if self._has(701):
            self.set(701, "W", power)
            self.set(701, "Hz", round(b.hz(now) / 10.0**_HZ_SF))
            self.set(701, "St", 1)
            self.set(701, "InvSt", 3 if running else 7)
            self.set(701, "ConnSt", 1)
        if self._has(713):
            self.set(713, "SoC", round(b.soc_pct / 10.0**_PCT_SF))
            self.set(713, "WHAvail", b.stored_wh() / 10.0**self._wh_sf)
        if self._has(802):
            self.set(802, "SoC", round(b.soc_pct / 10.0**_PCT_SF))
        if self._has(103):
            self.set(103, "W", power)
            self.set(103, "Hz", round(b.hz(now) / 10.0**_LEGACY_HZ_SF))
            self.set(103, "St", 4 if running else 8)
        if self._has(124):
            self.set(124, "ChaState", round(b.soc_pct / 10.0**_PCT_SF))
            self.set(124, "ChaSt", 4 if b.power_w < -0.5 else (3 if b.power_w > 0.5 else 6))
        if self._has(704):
            remaining = b.revert_remaining_s(now) if self._timer_running else None
            self.set(704, "WSetRvrtRem", 0 if remaining is None else round(remaining))
            cap_left = b.cap_remaining_s(now)
            self.set(704, "WMaxLimPctRvrtRem", 0 if cap_left is None else round(cap_left))
        self._pin()
        self._blank_absent()

    def _blank_absent(self) -> None:
        for model_id, name in self._absent:
            pt = POINTS[model_id][name]
            at = self.address(model_id, name) - self.base
            self.regs[at : at + codec.size_of(pt.kind)] = codec.sentinel_words(pt.kind)

    def garbage_overlay(self, words: list[int]) -> None:
        """Overwrite live points in a copy of the image with sentinels and impossible scale factors."""
        for model_id, name in ((701, "Hz"), (713, "SoC"), (103, "W"), (124, "ChaState")):
            if self._has(model_id):
                pt = POINTS[model_id][name]
                at = self.address(model_id, name) - self.base
                words[at : at + codec.size_of(pt.kind)] = codec.sentinel_words(pt.kind)
        if self._has(701):
            # Not a SunSpec sentinel, but what some firmware reports for "invalid": must not pass as 32 kW.
            words[self.address(701, "W") - self.base] = 0x7FFF
        for model_id, name in ((701, "Hz_SF"), (103, "Hz_SF"), (713, "Pct_SF")):
            if self._has(model_id):
                words[self.address(model_id, name) - self.base] = 0x7FFF  # SF 32767: out of -10..10

    # -- behaviour --------------------------------------------------------------------------

    def on_access(self, now: float, address: int | None = None, values: list[int] | None = None) -> None:
        """Advance the battery to `now`, apply a write (if any), refresh the live registers."""
        self._advance(now)
        if address is not None and values is not None and not self.faults.ignore_writes:
            self.writes.append(WriteRecord(now, address, list(values)))
            at = address - self.base
            self.regs[at : at + len(values)] = values
            touched = range(address, address + len(values))
            if self._has(704):
                self._apply_704(now, touched)
            if self._has(124):
                self._apply_124(now, touched)
        self._publish(now)

    def _advance(self, now: float) -> None:
        was_active = self._timer_running and self.battery.target_w is not None
        was_capped = self.battery.cap_remaining_s(now) is not None
        self.battery.advance(now)
        if was_capped and self.battery.caps_w == (None, None):
            # A limit's reversion timer fired: 704's reversion enable and value apply, without a
            # timer; 124 goes back to no rate control.
            _LOGGER.info("simulated inverter: the limits' reversion timer expired")
            if self._has(704):
                self.set(704, "WMaxLimPctEna", self.get(704, "WMaxLimPctEnaRvrt") or 0)
                self.set(704, "WMaxLimPct", self.get(704, "WMaxLimPctRvrt") or 0)
                self._limit_704(now, restart_timer=False)
            if self._has(124):
                self.set(124, "StorCtl_Mod", 0)
        if was_active and self.battery.target_w is None:
            # The device-side revert timer fired: apply the reversion values (704 / 124 semantics).
            self._timer_running = False
            _LOGGER.info("simulated inverter: revert timer expired, back to own mode")
            if self._has(704):
                enable = self.get(704, "WSetEnaRvrt") or 0
                self.set(704, "WSetEna", enable)
                self.set(704, "WSet", self.get(704, "WSetRvrt") or 0)
                self.set(704, "WSetPct", self.get(704, "WSetPctRvrt") or 0)
                if enable == 1:
                    self._command_704(now, restart_timer=False)
            if self._has(124):
                self.set(124, "StorCtl_Mod", 0)

    def _touches(self, touched: range, model_id: int, *names: str) -> bool:
        for name in names:
            start = self.address(model_id, name)
            if any(start + i in touched for i in range(codec.size_of(POINTS[model_id][name].kind))):
                return True
        return False

    def _apply_704(self, now: float, touched: range) -> None:
        if self._touches(touched, 704, "WMaxLimPctEna", "WMaxLimPct", "WMaxLimPctRvrtTms"):
            self._limit_704(now, restart_timer=True)
        if not self._touches(touched, 704, "WSetEna", "WSetMod", "WSet", "WSetPct", "WSetRvrtTms"):
            return
        self._command_704(now, restart_timer=True)

    def _limit_704(self, now: float, *, restart_timer: bool) -> None:
        """WMaxLimPct: output (discharge) at most that percent of WMax, over any mode or setpoint."""
        if self.get(704, "WMaxLimPctEna") != 1:
            self.battery.limit(None, now)
            return
        pct = float(self.get(704, "WMaxLimPct") or 0) * 10.0 ** int(self.get(704, "WMaxLimPct_SF") or 0)
        tms = self.get(704, "WMaxLimPctRvrtTms") or 0
        hold = float(tms) if restart_timer and tms else None
        self.battery.limit(pct / 100.0 * self.spec.max_w, now, hold)

    def _command_704(self, now: float, *, restart_timer: bool) -> None:
        if self.get(704, "WSetEna") != 1:
            self.battery.command(None, now)
            self._timer_running = False
            return
        # Scaled with the scale factors the device publishes (a test may change them).
        if self.get(704, "WSetMod") == 1:
            raw = self.get(704, "WSet") or 0
            watts = float(raw) * 10.0 ** int(self.get(704, "WSet_SF") or 0)
        else:
            pct = float(self.get(704, "WSetPct") or 0) * 10.0 ** int(self.get(704, "WSetPct_SF") or 0)
            watts = pct / 100.0 * self.spec.max_w
        tms = self.get(704, "WSetRvrtTms") or 0
        # A reversion value applied by the device itself runs without a timer.
        hold = float(tms) if restart_timer and tms else None
        self.battery.command(watts, now, hold)
        self._timer_running = hold is not None

    def _apply_124(self, now: float, touched: range) -> None:
        names = ("StorCtl_Mod", "OutWRte", "InWRte", "InOutWRte_RvrtTms")
        if not self._touches(touched, 124, *names):
            return
        mode = int(self.get(124, "StorCtl_Mod") or 0)
        self.battery.limit(None, now)
        if mode == 0:
            self.battery.command(None, now)
            self._timer_running = False
            return
        ref = self.spec.max_charge_w
        rte = 10.0**_RTE_SF / 100.0 * ref
        high = float(self.get(124, "OutWRte") or 0) * rte if mode & 2 else self.spec.max_discharge_w
        low = -float(self.get(124, "InWRte") or 0) * rte if mode & 1 else -self.spec.max_charge_w
        tms = self.get(124, "InOutWRte_RvrtTms") or 0
        hold = float(tms) if tms else None
        if low <= 0.0 <= high:
            # Window semantics: a window holding 0 W limits the battery's own mode to it ...
            self.battery.command(None, now)
            self._timer_running = False
            self.battery.limit(high if mode & 2 else None, now, hold, charge_w=-low if mode & 1 else None)
            return
        # ... and one that excludes 0 forces a flow: the end nearest 0 (empty: idle).
        target = 0.0 if low > high else min(max(0.0, low), high)
        self.battery.command(target, now, hold)
        self._timer_running = bool(tms)


def _sf_for(value: float) -> int:
    """Smallest non-negative scale factor that fits `value` in a uint16/int16 register."""
    sf = 0
    while value / 10.0**sf > 32767:
        sf += 1
    return sf
