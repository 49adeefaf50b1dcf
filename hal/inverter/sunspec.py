"""The SunSpec profile: IEEE 1547 DER models 701/702/704/713 (802 if present), legacy 103/120/121/124.

Setpoints go through 704 (`WSet` in watts mode, `WSetPct` in percent-of-WMax mode). The control
block (offsets 22..56: scale factors, mode, reversion) is read on first use and kept until an error
or a map rediscovery (a keepalive also re-reads it every ten minutes). A setpoint is then ONE FC16
write of WSetEna..WSetRvrtTms (offsets 22..32: enable, mode, value, and the device-side reversion
`WSetRvrtTms` back to `WSetEnaRvrt = 0`, i.e. the battery's own mode) and one read-back of enable,
mode and value (a keepalive also reads the revert timer's remaining time). A device that refuses
the block write gets the point-by-point sequence (value first, mode next, enable last) from then
on. Devices with only the legacy set get 124's charge/discharge rate window with its
`InOutWRte_RvrtTms` timer instead.

This code does not clamp to ratings (one clamp wraps every inverter); it refuses an implausible
setpoint scale factor before writing anything, and quantises towards zero, so a write never has a
larger magnitude than the request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from hal.clock import WallClock
from hal.errors import (
    HalError,
    InverterProtocolError,
    InverterUnreachable,
    ModbusExceptionReply,
    ProfileError,
    SetpointNotAccepted,
)
from hal.inverter import codec
from hal.inverter.base import BatteryInverter, ConnectionStatus, OperatingStatus, Ratings, Telemetry
from hal.inverter.settings import InverterSettings
from hal.inverter.sunspec_map import Block, SunSpecMap, discover
from hal.inverter.sunspec_points import LEGACY_ST_TO_INVST, POINTS
from hal.modbus import ModbusBus

_LOGGER = logging.getLogger(__name__)

_ENABLED = 1
_MODE_PCT, _MODE_WATTS = 0, 1
_STORCTL_CHARGE_AND_DISCHARGE = 3
_E = TypeVar("_E", ConnectionStatus, OperatingStatus)
# 704 offsets: the control block read on first use, the block written per setpoint, the timer's end.
_CTL_FIRST, _CTL_LAST = 22, 56
_WRITE_LAST = 32  # WSetRvrtTms; 33..34 (WSetRvrtRem) is read-only
_REM_LAST = 34
# Coarsest plausible setpoint steps: 100 W (WSet_SF 2), 1 % (WSetPct_SF, 124.InOutWRte_SF 0).
_WSET_SF_MAX = 2
_PCT_SF_MAX = 0
# Exceptions with which a device refuses a request it cannot take (illegal function, address, value).
_REJECTED = frozenset({1, 2, 3})
_CTL_MAX_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class _Active:
    watts: float


@dataclass(frozen=True)
class _Control704:
    """The 704 control block as the gateway last read or wrote it, for the map it was read with."""

    smap: SunSpecMap
    block: Block
    read_at: datetime


@dataclass(frozen=True)
class _Plan:
    """One scaled setpoint: mode, the point that carries it, its raw value and watts per raw step."""

    mode: int
    name: str
    raw: int
    scale: float


class SunSpecInverter(BatteryInverter):
    """A SunSpec battery inverter on a shared Modbus bus; the map is discovered on first use."""

    def __init__(
        self,
        bus: ModbusBus,
        settings: InverterSettings,
        *,
        wall_clock: WallClock,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._device_id = settings.device_id
        self._wall_clock = wall_clock
        self._on_close = on_close
        self._map: SunSpecMap | None = None
        self._ratings: Ratings | None = None
        self._capacity_713: tuple[float | None] | None = None
        self._active: _Active | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._warned_timer = False
        self._warned_no_revert = False
        self._ctl: _Control704 | None = None
        self._points_only = False
        self._limited = False
        self._no_limits = False

    # -- plumbing ---------------------------------------------------------------------------

    async def sunspec_map(self) -> SunSpecMap:
        """The device's model map, discovering it on first use."""
        if self._closed:
            raise InverterUnreachable("inverter is closed")
        if self._map is None:
            found = await discover(self._bus, self._device_id)
            if not (found.has(701) or found.has(103)):
                raise ProfileError(
                    f"device {self._device_id}: SunSpec map {found.ids} has neither 701 nor 103 "
                    "(no power/frequency measurement)"
                )
            self._map = found
        return self._map

    async def _block(self, model_id: int, first: int, last: int) -> Block:
        smap = await self.sunspec_map()
        start = smap.models[model_id].start
        try:
            words = await self._bus.read(start + first, last - first + 1, self._device_id)
        except ModbusExceptionReply as exc:
            if exc.code == 2:
                # The map moved (firmware update, different device at this id): rediscover next time.
                self._map = None
            raise
        return Block(model_id, first, words)

    async def _write(self, model_id: int, name: str, value: float) -> None:
        smap = await self.sunspec_map()
        pt = POINTS[model_id][name]
        words = codec.encode(value, pt.kind)
        await self._bus.write(smap.models[model_id].start + pt.offset, words, self._device_id)

    # -- readings ---------------------------------------------------------------------------

    @property
    def bus(self) -> ModbusBus:
        """The shared bus this inverter talks over (its counters feed health reports and the bench)."""
        return self._bus

    async def read_ratings(self) -> Ratings:
        """Ratings from 702 + 713 (or 802), else legacy 120/121/124."""
        smap = await self.sunspec_map()
        if smap.has(702):
            b = await self._block(702, 2, 45)
            ratings = Ratings(
                max_w=b.value("WMaxRtg"),
                max_charge_w=b.value("WChaRteMaxRtg"),
                max_discharge_w=b.value("WDisChaRteMaxRtg"),
                energy_capacity_wh=await self._capacity_wh(smap),
                set_max_w=b.value("WMax"),
                set_max_charge_w=b.value("WChaRteMax"),
                set_max_discharge_w=b.value("WDisChaRteMax"),
            )
        else:
            ratings = await self._legacy_ratings(smap)
        self._ratings = ratings
        return ratings

    async def _capacity_wh(self, smap: SunSpecMap) -> float | None:
        if smap.has(713):
            if self._capacity_713 is not None:
                return self._capacity_713[0]  # read with the state of charge, at most a cycle ago
            return (await self._block(713, 2, 8)).value("WHRtg")
        if smap.has(802):
            return (await self._block(802, 3, 53)).value("WHRtg")
        if smap.has(120):
            return (await self._block(120, 19, 20)).value("WHRtg")
        return None

    async def _legacy_ratings(self, smap: SunSpecMap) -> Ratings:
        max_w = max_cha = max_dis = capacity = None
        if smap.has(120):
            b = await self._block(120, 2, 26)
            max_w, capacity = b.value("WRtg"), b.value("WHRtg")
            max_cha, max_dis = b.value("MaxChaRte"), b.value("MaxDisChaRte")
        set_max_w = (await self._block(121, 2, 22)).value("WMax") if smap.has(121) else None
        set_cha = (await self._block(124, 2, 18)).value("WChaMax") if smap.has(124) else None
        return Ratings(
            max_w=max_w,
            max_charge_w=max_cha,
            max_discharge_w=max_dis,
            energy_capacity_wh=capacity,
            set_max_w=set_max_w,
            set_max_charge_w=set_cha,
        )

    async def read_telemetry(self) -> Telemetry:
        """W, Hz and status from 701 (or 103), state of charge from 713 (or 802, or 124).

        Values are as decoded (sentinels and out-of-range scale factors are None); the guard
        (`hal.inverter.guard`) judges whether they are plausible.
        """
        smap = await self.sunspec_map()
        if smap.has(701):
            b = await self._block(701, 2, 116)
            w, hz = b.value("W"), b.value("Hz")
            connection = _enum(ConnectionStatus, b.raw("ConnSt"))
            operating = _enum(OperatingStatus, b.raw("InvSt"))
        else:
            b = await self._block(103, 14, 38)
            w, hz = b.value("W"), b.value("Hz")
            connection = None
            st = b.raw("St")
            operating = _enum(OperatingStatus, None if st is None else LEGACY_ST_TO_INVST.get(int(st)))
        soc = await self._soc(smap)
        timestamp = self._wall_clock()
        return Telemetry(
            timestamp=timestamp,
            w=w,
            hz=hz,
            soc_pct=soc,
            connection=connection,
            operating=operating,
        )

    async def _soc(self, smap: SunSpecMap) -> float | None:
        if smap.has(713):
            # From WHRtg on: two registers more, and the per-minute ratings read is 702 alone.
            block = await self._block(713, 2, 8)
            self._capacity_713 = (block.value("WHRtg"),)
            return block.value("SoC")
        if smap.has(802):
            return (await self._block(802, 11, 56)).value("SoC")
        if smap.has(124):
            return (await self._block(124, 8, 22)).value("ChaState")
        return None

    # -- control ----------------------------------------------------------------------------

    async def set_active_power(self, watts: float) -> float:
        """Write the setpoint through 704 (or the 124 window), arm the revert timer, read back."""
        async with self._lock:
            held = await self._apply(watts)
            self._active = _Active(watts)
            return held

    async def keepalive(self) -> None:
        """Re-write the active setpoint, which restarts the device's revert timer."""
        async with self._lock:
            if self._active is None:
                return
            await self._apply(self._active.watts, refresh=True)

    async def release(self) -> None:
        """Disable the setpoint (704 WSetEna = 0, or 124 StorCtl_Mod = 0) and a limit (WMaxLimPctEna = 0)."""
        async with self._lock:
            smap = await self.sunspec_map()
            if smap.has(704):
                if self._limited:
                    await self._write(704, "WMaxLimPctEna", 0)
                    self._limited = False
                await self._release_704()
            elif smap.has(124):
                self._active = None
                self._limited = False
                await self._write(124, "StorCtl_Mod", 0)

    async def _release_704(self) -> None:
        self._active = None
        await self._write(704, "WSetEna", 0)
        back = await self._block(704, 22, 22)
        if back.raw("WSetEna") != 0:
            raise SetpointNotAccepted(f"device {self._device_id} kept WSetEna enabled")

    async def apply_limits(self, discharge_w: float | None, charge_w: float | None) -> bool:
        """A discharge cap as 704 WMaxLimPct (percent of WMax, towards the tighter side) with its own
        reversion timer, the battery in its own mode under it; on a legacy device, both caps as 124's
        rate limits. 704 has no charge cap (702's rates are settings without a reversion: a dead
        gateway would leave them): False, nothing written, as for a device refusing the points."""
        async with self._lock:
            smap = await self.sunspec_map()
            if self._no_limits or not (smap.has(704) or smap.has(124)):
                return False
            if not smap.has(704):
                return await self._limits_124(discharge_w, charge_w)
            if charge_w is not None:
                return False
            if self._active is not None:
                await self._release_704()  # limits only: the battery's own mode under them
            if discharge_w is None:
                await self._write(704, "WMaxLimPctEna", 0)
                self._limited = False
                return True
            sf = (await self._control_704(refresh=False)).block.raw("WMaxLimPct_SF")
            if sf is None or sf > _PCT_SF_MAX:
                return self._without_limits(f"WMaxLimPct_SF {sf} (not implemented, or steps over 1 %)")
            ratings = self._ratings or await self.read_ratings()
            ref = ratings.set_max_w or ratings.max_w
            if not ref:
                raise ProfileError(f"device {self._device_id}: WMaxLimPct needs 702.WMax or WMaxRtg")
            full = round(100.0 / 10.0**sf)
            raw = max(0, min(full, math.floor(discharge_w / ref * 100.0 / 10.0**sf)))
            words = [_ENABLED, raw, full, 0, *codec.encode(round(self._settings.revert_timeout_s), "uint32")]
            start = smap.models[704].start
            try:
                # One request: value, reversion (back to disabled, the battery's own mode) and its
                # timer, enable; the device never acts on a partial update.
                await self._bus.write(start + POINTS[704]["WMaxLimPctEna"].offset, words, self._device_id)
            except ModbusExceptionReply as exc:
                if exc.code not in _REJECTED:
                    raise
                return self._without_limits(str(exc))
            back = await self._block(704, 14, 21)
            if back.raw("WMaxLimPctEna") != _ENABLED or back.raw("WMaxLimPct") != raw:
                raise SetpointNotAccepted(
                    f"device {self._device_id}: wrote WMaxLimPct={raw} enabled, read back "
                    f"WMaxLimPct={back.raw('WMaxLimPct')} enabled={back.raw('WMaxLimPctEna')}"
                )
            self._limited = True
            return True

    async def _limits_124(self, discharge_w: float | None, charge_w: float | None) -> bool:
        """124 StorCtl_Mod bit 1 applies OutWRte as the discharge limit, bit 0 InWRte as the charge
        limit (percent of WChaMax, towards the tighter side), ended by InOutWRte_RvrtTms."""
        self._active = None
        if discharge_w is None and charge_w is None:
            await self._write(124, "StorCtl_Mod", 0)
            self._limited = False
            return True
        ratings = self._ratings or await self.read_ratings()
        ref = ratings.set_max_charge_w or ratings.max_charge_w
        if not ref:
            raise ProfileError(f"device {self._device_id}: 124 limits need WChaMax or 120.MaxChaRte")
        ctl = await self._block(124, 2, 25)
        sf = ctl.raw("InOutWRte_SF")
        if sf is None or sf > _PCT_SF_MAX:
            return self._without_limits(f"124 InOutWRte_SF {sf} (not implemented, or steps over 1 %)")
        full = round(100.0 / 10.0**sf)

        def pct(watts: float | None) -> int:
            return full if watts is None else max(0, min(full, math.floor(watts / ref * 100.0 / 10.0**sf)))

        mode = (2 if discharge_w is not None else 0) | (1 if charge_w is not None else 0)
        out, into = pct(discharge_w), pct(charge_w)
        await self._write(124, "InOutWRte_RvrtTms", min(65535, round(self._settings.revert_timeout_s)))
        await self._write(124, "OutWRte", out)
        await self._write(124, "InWRte", into)
        await self._write(124, "StorCtl_Mod", mode)
        back = await self._block(124, 5, 13)
        if back.raw("StorCtl_Mod") != mode or back.raw("OutWRte") != out or back.raw("InWRte") != into:
            raise SetpointNotAccepted(
                f"device {self._device_id}: 124 limits not taken (StorCtl_Mod {mode}, OutWRte {out}, "
                f"InWRte {into})"
            )
        self._limited = True
        return True

    def _without_limits(self, reason: str) -> bool:
        self._no_limits = True
        _LOGGER.warning(
            "device %d: no usable 704 WMaxLimPct (%s); limits are held as setpoints", self._device_id, reason
        )
        return False

    async def close(self) -> None:
        """Stop using the bus; the device's revert timer takes the battery back if needed."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            await self._on_close()

    async def _apply(self, watts: float, *, refresh: bool = False) -> float:
        # No clamp here: the one clamp to ceiling and live ratings wraps every inverter (guard.py).
        smap = await self.sunspec_map()
        if smap.has(704):
            return await self._apply_704(watts, refresh=refresh)
        if smap.has(124):
            return await self._apply_124(watts, self._ratings or await self.read_ratings())
        raise ProfileError(
            f"device {self._device_id}: SunSpec map {smap.ids} has no 704 or 124 power control"
        )

    async def _apply_704(self, watts: float, *, refresh: bool) -> float:
        try:
            if self._points_only:
                ctl = await self._block(704, _CTL_FIRST, _CTL_LAST)
                return await self._write_points_704(await self._plan_704(watts, ctl), ctl)
            cached = await self._control_704(refresh=refresh)
            plan = await self._plan_704(watts, cached.block)
            held = await self._write_block_704(plan, cached, refresh=refresh)
            if held is not None:
                return held
            ctl = await self._block(704, _CTL_FIRST, _CTL_LAST)
            return await self._write_points_704(await self._plan_704(watts, ctl), ctl)
        except HalError:
            self._ctl = None  # re-read the control block before the next write
            raise

    async def _control_704(self, *, refresh: bool) -> _Control704:
        """The 704 control block as last read or written; read again on first use, after an error or
        a map rediscovery, and by a keepalive once it is `_CTL_MAX_AGE` old (a firmware update may
        change a scale factor without moving the map; a keepalive's latency does not matter)."""
        smap = await self.sunspec_map()
        ctl, now = self._ctl, self._wall_clock()
        if ctl is None or ctl.smap is not smap or (refresh and now - ctl.read_at >= _CTL_MAX_AGE):
            ctl = self._ctl = _Control704(smap, await self._block(704, _CTL_FIRST, _CTL_LAST), now)
        return ctl

    async def _plan_704(self, watts: float, ctl: Block) -> _Plan:
        """Scale and quantise (towards zero) the setpoint; implausible scale factors raise here."""
        if self._settings.setpoint_mode == "watts":
            sf = self._setpoint_sf(ctl, "WSet_SF", _WSET_SF_MAX)
            raw = _towards_zero(watts / 10.0**sf)
            return _Plan(_MODE_WATTS, "WSet", self._fit(raw, 704, "WSet", watts), 10.0**sf)
        sf = self._setpoint_sf(ctl, "WSetPct_SF", _PCT_SF_MAX)
        ratings = self._ratings or await self.read_ratings()
        ref = ratings.set_max_w or ratings.max_w
        if not ref:
            raise ProfileError(f"device {self._device_id}: percent mode needs 702.WMax or WMaxRtg")
        raw = _towards_zero(watts / ref * 100.0 / 10.0**sf)
        return _Plan(_MODE_PCT, "WSetPct", self._fit(raw, 704, "WSetPct", watts), 10.0**sf * ref / 100.0)

    def _setpoint_sf(self, block: Block, name: str, highest: int) -> int:
        sf = block.raw(name)
        if sf is None or sf > highest:
            word = block.words[POINTS[block.model_id][name].offset - block.first_offset]
            shown = (
                "0x8000 (not implemented)"
                if word == 0x8000
                else str(word - 0x10000 if word & 0x8000 else word)
            )
            raise InverterProtocolError(
                f"device {self._device_id}: {block.model_id}.{name} = {shown} is implausible for a "
                f"setpoint (allowed -10..{highest}); nothing written"
            )
        return int(sf)

    def _fit(self, raw: int, model_id: int, name: str, watts: float) -> int:
        bits = 16 * codec.size_of(POINTS[model_id][name].kind)
        if abs(raw) >= 1 << (bits - 1):  # the most negative value is the "not implemented" sentinel
            raise InverterProtocolError(
                f"device {self._device_id}: {watts} W does not fit {model_id}.{name} at its scale "
                "factor; nothing written"
            )
        return raw

    async def _write_block_704(self, plan: _Plan, ctl: _Control704, *, refresh: bool) -> float | None:
        """One FC16 of WSetEna..WSetRvrtTms, then a read-back of enable, mode and value.

        Returns what the device holds, or None when it refuses the block write (then nothing of it
        was applied, and this inverter uses the point-by-point sequence from now on).
        """
        start = (await self.sunspec_map()).models[704].start
        words = ctl.block.words[: _WRITE_LAST - _CTL_FIRST + 1]
        # Every point of the block is written: the setpoint, its mode, the enable, and the reversion
        # (back to WSetEnaRvrt = 0, the battery's own mode, after WSetRvrtTms). The other mode's value
        # is carried as last read. One request: the device never acts on a partial update.
        for name, value in (
            ("WSetEna", _ENABLED),
            ("WSetMod", plan.mode),
            (plan.name, plan.raw),
            ("WSetRvrt", 0),
            ("WSetPctRvrt", 0),
            ("WSetEnaRvrt", 0),
            ("WSetRvrtTms", round(self._settings.revert_timeout_s)),
        ):
            words = _put(words, name, value)
        try:
            await self._bus.write(start + _CTL_FIRST, words, self._device_id)
        except ModbusExceptionReply as exc:
            if exc.code not in _REJECTED:
                raise
            # Optional reversion points absent, or a short FC16 limit: a device checks a request
            # whole before applying any of it.
            self._points_only = True
            _LOGGER.warning(
                "device %d rejects one write of the 704 WSet block (%s); using one write per point "
                "from now on (slower on RS-485)",
                self._device_id,
                exc,
            )
            return None
        # A refresh (keepalive) also reads the revert timer's remaining time: it proves the restart.
        last = (
            _REM_LAST
            if refresh
            else POINTS[704][plan.name].offset + codec.size_of(POINTS[704][plan.name].kind) - 1
        )
        back = await self._block(704, _CTL_FIRST, last)
        self._verify(back, plan)
        if refresh:
            self._check_timer(back.raw("WSetRvrtRem"))
        kept = Block(704, _CTL_FIRST, words + ctl.block.words[len(words) :])
        self._ctl = dataclasses.replace(ctl, block=kept)
        return plan.raw * plan.scale

    def _verify(self, back: Block, plan: _Plan) -> None:
        if (
            back.raw("WSetEna") != _ENABLED
            or back.raw("WSetMod") != plan.mode
            or back.raw(plan.name) != plan.raw
        ):
            raise SetpointNotAccepted(
                f"device {self._device_id}: wrote {plan.name}={plan.raw} mode={plan.mode} enabled, read "
                f"back {plan.name}={back.raw(plan.name)} mode={back.raw('WSetMod')} "
                f"enabled={back.raw('WSetEna')}"
            )

    async def _write_points_704(self, plan: _Plan, ctl: Block) -> float:
        """The point-by-point sequence, for devices that refuse the block write."""
        await self._arm_704(ctl)
        # Value first, then the mode that makes it live, enable last (SunSpec multi-write guidance):
        # no moment exists where the device acts on a stale value of the other mode.
        await self._write(704, plan.name, plan.raw)
        if ctl.raw("WSetMod") != plan.mode:
            await self._write(704, "WSetMod", plan.mode)
        await self._write(704, "WSetEna", _ENABLED)
        back = await self._block(704, _CTL_FIRST, _REM_LAST)
        self._verify(back, plan)
        self._check_timer(back.raw("WSetRvrtRem"))
        return plan.raw * plan.scale

    async def _arm_704(self, ctl: Block) -> None:
        tms = round(self._settings.revert_timeout_s)
        try:
            if ctl.raw("WSetRvrt") != 0 or ctl.raw("WSetPctRvrt") != 0:
                await self._write(704, "WSetRvrt", 0)
                await self._write(704, "WSetPctRvrt", 0)
            if ctl.raw("WSetEnaRvrt") != 0:
                await self._write(704, "WSetEnaRvrt", 0)
            # Written every time: on most devices writing the timer also restarts it.
            await self._write(704, "WSetRvrtTms", tms)
        except ModbusExceptionReply as exc:
            # The reversion points are optional in 704. Without them the battery keeps the last
            # setpoint if the gateway dies: say so loudly once, but do not refuse to control it.
            if not self._warned_no_revert:
                self._warned_no_revert = True
                _LOGGER.warning(
                    "device %d rejects the 704 reversion points (%s): it will NOT revert by itself "
                    "if the gateway stops; only release() on shutdown protects it",
                    self._device_id,
                    exc,
                )

    def _check_timer(self, remaining: float | int | None) -> None:
        if remaining is None or self._warned_timer:
            return
        if remaining < self._settings.revert_timeout_s - self._settings.keepalive_interval:
            self._warned_timer = True
            _LOGGER.warning(
                "device %d: revert timer shows %s s left right after a refresh; it may not restart on writes",
                self._device_id,
                remaining,
            )

    async def _apply_124(self, watts: float, ratings: Ratings) -> float:
        ref = ratings.set_max_charge_w or ratings.max_charge_w
        if not ref:
            raise ProfileError(f"device {self._device_id}: 124 control needs WChaMax or 120.MaxChaRte")
        ctl = await self._block(124, 2, 25)
        sf = self._setpoint_sf(ctl, "InOutWRte_SF", _PCT_SF_MAX)
        raw = self._fit(_towards_zero(watts / ref * 100.0 / 10.0**sf), 124, "OutWRte", watts)
        await self._write(124, "InOutWRte_RvrtTms", min(65535, round(self._settings.revert_timeout_s)))
        # Window semantics: discharge limit +x and charge limit −x force exactly x (and vice versa).
        await self._write(124, "OutWRte", raw)
        await self._write(124, "InWRte", -raw)
        await self._write(124, "StorCtl_Mod", _STORCTL_CHARGE_AND_DISCHARGE)
        back = await self._block(124, 5, 13)
        if back.raw("StorCtl_Mod") != _STORCTL_CHARGE_AND_DISCHARGE or back.raw("OutWRte") != raw:
            raise SetpointNotAccepted(f"device {self._device_id}: 124 rates not taken (OutWRte {raw})")
        return raw * 10.0**sf * ref / 100.0


def _towards_zero(steps: float) -> int:
    """Whole steps, never a larger magnitude than asked (float noise below 1e-9 step is not rounding)."""
    whole = math.floor(abs(steps) + 1e-9)
    return -whole if steps < 0 else whole


def _put(words: list[int], name: str, value: int) -> list[int]:
    """A copy of the 704 block words (from offset 22) with one point replaced."""
    pt = POINTS[704][name]
    at = pt.offset - _CTL_FIRST
    encoded = codec.encode(value, pt.kind)
    return words[:at] + encoded + words[at + len(encoded) :]


def _enum(kind: type[_E], raw: float | int | None) -> _E | None:
    if raw is None:
        return None
    try:
        return kind(int(raw))
    except ValueError:
        return None
