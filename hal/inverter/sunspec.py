"""The SunSpec profile: IEEE 1547 DER models 701/702/704/713 (802 if present), legacy 103/120/121/124.

Setpoints go through 704 (`WSet` in watts mode, `WSetPct` in percent-of-WMax mode): value first,
mode next, enable last, then read back. Before enabling, the device-side reversion is armed
(`WSetRvrtTms`, reverting to `WSetEnaRvrt = 0`, i.e. the battery's own mode), so the battery
reverts by itself if the gateway stops refreshing. Devices with only the legacy set get 124's
charge/discharge rate window with its `InOutWRte_RvrtTms` timer instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from hal.clock import Clock
from hal.errors import (
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


@dataclass(frozen=True)
class _Active:
    watts: float


class SunSpecInverter(BatteryInverter):
    """A SunSpec battery inverter on a shared Modbus bus; the map is discovered on first use."""

    def __init__(
        self,
        bus: ModbusBus,
        settings: InverterSettings,
        *,
        clock: Clock,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._device_id = settings.device_id
        self._clock = clock
        self._on_close = on_close
        self._map: SunSpecMap | None = None
        self._ratings: Ratings | None = None
        self._active: _Active | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._warned_timer = False
        self._warned_no_revert = False

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
        timestamp = self._clock()
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
            return (await self._block(713, 4, 8)).value("SoC")
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
            await self._apply(self._active.watts)

    async def release(self) -> None:
        """Disable the setpoint (704 WSetEna = 0, or 124 StorCtl_Mod = 0)."""
        async with self._lock:
            smap = await self.sunspec_map()
            self._active = None
            if smap.has(704):
                await self._write(704, "WSetEna", 0)
                back = await self._block(704, 22, 22)
                if back.raw("WSetEna") != 0:
                    raise SetpointNotAccepted(f"device {self._device_id} kept WSetEna enabled")
            elif smap.has(124):
                await self._write(124, "StorCtl_Mod", 0)

    async def close(self) -> None:
        """Stop using the bus; the device's revert timer takes the battery back if needed."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            await self._on_close()

    async def _apply(self, watts: float) -> float:
        smap = await self.sunspec_map()
        ratings = self._ratings or await self.read_ratings()
        target = _clamp(watts, ratings)
        if smap.has(704):
            return await self._apply_704(target, ratings)
        if smap.has(124):
            return await self._apply_124(target, ratings)
        raise ProfileError(
            f"device {self._device_id}: SunSpec map {smap.ids} has no 704 or 124 power control"
        )

    async def _apply_704(self, watts: float, ratings: Ratings) -> float:
        ctl = await self._block(704, 22, 56)
        await self._arm_704(ctl)
        if self._settings.setpoint_mode == "watts":
            sf = _require_sf(ctl.raw("WSet_SF"), "704.WSet_SF")
            mode, name, raw = _MODE_WATTS, "WSet", round(watts / 10.0**sf)
            scale = 10.0**sf
        else:
            sf = _require_sf(ctl.raw("WSetPct_SF"), "704.WSetPct_SF")
            ref = ratings.set_max_w or ratings.max_w
            if not ref:
                raise ProfileError(f"device {self._device_id}: percent mode needs 702.WMax or WMaxRtg")
            raw = max(-32767, min(32767, round(watts / ref * 100.0 / 10.0**sf)))
            mode, name, scale = _MODE_PCT, "WSetPct", 10.0**sf * ref / 100.0
        # Value first, then the mode that makes it live, enable last (SunSpec multi-write guidance):
        # no moment exists where the device acts on a stale value of the other mode.
        await self._write(704, name, raw)
        if ctl.raw("WSetMod") != mode:
            await self._write(704, "WSetMod", mode)
        await self._write(704, "WSetEna", _ENABLED)
        back = await self._block(704, 22, 34)
        if back.raw("WSetEna") != _ENABLED or back.raw("WSetMod") != mode or back.raw(name) != raw:
            raise SetpointNotAccepted(
                f"device {self._device_id}: wrote {name}={raw} mode={mode} enabled, read back "
                f"{name}={back.raw(name)} mode={back.raw('WSetMod')} enabled={back.raw('WSetEna')}"
            )
        self._check_timer(back.raw("WSetRvrtRem"))
        return raw * scale

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
        sf = _require_sf(ctl.raw("InOutWRte_SF"), "124.InOutWRte_SF")
        raw = max(-32767, min(32767, round(watts / ref * 100.0 / 10.0**sf)))
        await self._write(124, "InOutWRte_RvrtTms", min(65535, round(self._settings.revert_timeout_s)))
        # Window semantics: discharge limit +x and charge limit −x force exactly x (and vice versa).
        await self._write(124, "OutWRte", raw)
        await self._write(124, "InWRte", -raw)
        await self._write(124, "StorCtl_Mod", _STORCTL_CHARGE_AND_DISCHARGE)
        back = await self._block(124, 5, 13)
        if back.raw("StorCtl_Mod") != _STORCTL_CHARGE_AND_DISCHARGE or back.raw("OutWRte") != raw:
            raise SetpointNotAccepted(f"device {self._device_id}: 124 rates not taken (OutWRte {raw})")
        return raw * 10.0**sf * ref / 100.0


def _clamp(watts: float, ratings: Ratings) -> float:
    low = ratings.charge_limit_w()
    high = ratings.discharge_limit_w()
    if high is not None:
        watts = min(watts, high)
    if low is not None:
        watts = max(watts, -low)
    return watts


def _require_sf(sf: float | int | None, name: str) -> int:
    if sf is None:
        raise InverterProtocolError(f"{name} is unimplemented or out of range; cannot scale a setpoint")
    return int(sf)


def _enum(kind: type[_E], raw: float | int | None) -> _E | None:
    if raw is None:
        return None
    try:
        return kind(int(raw))
    except ValueError:
        return None
