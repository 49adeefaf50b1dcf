"""The one entry point the app uses to get a `BatteryInverter` from settings."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

from hal.clock import WallClock, utc_now
from hal.errors import ConfigurationError, HalError
from hal.inverter.base import BatteryInverter
from hal.inverter.guard import SafeInverter
from hal.inverter.settings import InverterSettings

if TYPE_CHECKING:
    from hal.inverter.site import SocLimits

_LOGGER = logging.getLogger(__name__)

#: where the development-only lab package (tests/labpkg) registers its simulated battery
SIM_ENTRY_POINTS = "wattsmart_gateway.simulated_inverter"


async def connect_inverter(settings: InverterSettings, *, wall_clock: WallClock = utc_now) -> SafeInverter:
    """Build the inverter the settings describe, behind the guard; the caller must `close()` it.

    Every setpoint goes through `SafeInverter`: clamped to the nameplate and the live ratings.
    Profiles are validated here (a broken file raises `ProfileError` at once); the device itself is
    reached lazily, so an inverter that is still powering up does not fail start-up: its calls raise
    `InverterUnreachable` until it answers.
    """
    device: BatteryInverter
    if settings.transport == "sim":
        device = _simulated(settings, wall_clock)
    else:
        # Imported here: the sim path does not load the Modbus profile modules.
        from hal.inverter.modbus_inverter import connect_modbus_inverter

        device = await connect_modbus_inverter(settings, wall_clock=wall_clock)
    return SafeInverter(device, settings.nameplate, max_age_s=settings.ratings_max_age_s)


def _simulated(settings: InverterSettings, wall_clock: WallClock) -> BatteryInverter:
    """The lab package's simulated battery (transport "sim"); a box installs no simulator."""
    make = _simulator_factory()
    if make is None:
        raise ConfigurationError(
            'transport "sim" needs the simulated battery of the lab package (wattsmart-gateway-lab, a '
            "development install: make install); this installation has none: use transport rtu or tcp"
        )
    return make(settings.sim, revert_timeout_s=settings.revert_timeout_s, wall_clock=wall_clock)


@functools.cache
def _simulator_factory() -> Callable[..., BatteryInverter] | None:
    from importlib.metadata import entry_points  # only on the sim path

    found = sorted(entry_points(group=SIM_ENTRY_POINTS), key=lambda e: e.name)
    if not found:
        return None
    make: Callable[..., BatteryInverter] = found[0].load()
    return make


@contextlib.asynccontextmanager
async def open_inverter(
    settings: InverterSettings, *, wall_clock: WallClock = utc_now, auto_keepalive: bool = True
) -> AsyncIterator[SafeInverter]:
    """`async with open_inverter(settings) as inverter:` — connects, refreshes the revert timer, closes.

    With `auto_keepalive`, a task owned by this context calls `keepalive()` every
    `settings.keepalive_interval` seconds. Leaving the context does not release the battery: call
    `release()` first for a graceful hand-back; otherwise the device-side timer reverts it.
    """
    inverter = await connect_inverter(settings, wall_clock=wall_clock)
    task: asyncio.Task[None] | None = None
    if auto_keepalive:
        loop = _keepalive_loop(inverter, settings.keepalive_interval)
        task = asyncio.create_task(loop, name="inverter-keepalive")
    try:
        yield inverter
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await inverter.close()


async def _keepalive_loop(inverter: BatteryInverter, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await inverter.keepalive()
        except HalError as exc:
            # The bus logs the down/up transitions; repeating them here every interval would be noise.
            _LOGGER.debug("keepalive failed: %s", exc)


async def connect_site(
    settings: Sequence[InverterSettings],
    *,
    soc: SocLimits | None = None,
    wall_clock: WallClock = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> SafeInverter:
    """Several inverters as one (`hal.inverter.site`): each behind its own guard, the site behind one more.

    Members on one serial port or TCP endpoint share one paced connection (the bus pool).
    """
    from hal.inverter.site import Member, SiteInverter, site_nameplate

    members = []
    for index, one in enumerate(settings):
        guard = await connect_inverter(one, wall_clock=wall_clock)
        members.append(Member(f"inverter[{index}] (unit {one.device_id})", guard))
    site = SiteInverter(members, soc, monotonic=monotonic)
    plate = site_nameplate([one.nameplate for one in settings])
    max_age = min(one.ratings_max_age_s for one in settings)
    return SafeInverter(site, plate, max_age_s=max_age)
