"""The site the configuration describes: one inverter or several driven as one, and the site meter."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from app.config import Config
from app.control.site_limit import ConnectionPoint
from app.hardware import inverter_settings
from app.meter import ObservedMeter
from hal.inverter import SafeInverter, connect_inverter
from hal.inverter.factory import connect_site
from hal.inverter.site import SocLimits
from hal.meter import MeterRegister

#: the first reading at start-up waits this long (the status page's sampler may be 30 s away)
FIRST_READ_S = 3.0


@dataclass(frozen=True)
class Site:
    """The inverter behind its guard and the site meter at the grid connection point (if any)."""

    inverter: SafeInverter
    meter: ObservedMeter | None = None

    def connection_point(self) -> ConnectionPoint | None:
        """Where export and import limits are held: at the meter, or (None) at the battery alone."""
        return ConnectionPoint(self.meter) if self.meter is not None else None

    async def close(self) -> None:
        """Close the inverter, then the meter."""
        await self.inverter.close()
        if self.meter is not None:
            await self.meter.close()


async def open_site(config: Config, first_read_s: float = FIRST_READ_S) -> Site:
    """The configured site, its inverter read once (a dead one is shown, not fatal).

    Raises `hal.errors.ConfigurationError` when it cannot work as configured.
    """
    inverter = await connect_configured(config)
    try:
        meter = open_meter(config)
    except BaseException:
        await inverter.close()
        raise
    with contextlib.suppress(Exception):
        await asyncio.wait_for(inverter.read_telemetry(), first_read_s)
    return Site(inverter, meter)


async def connect_configured(config: Config) -> SafeInverter:
    """The configured inverter behind its guard; several (`inverter:` a list) as one site behind one more."""
    age = float(config.telemetry.ratings_interval_s)
    settings = [inverter_settings(one, age) for one in config.site()]
    if len(settings) == 1:
        return await connect_inverter(settings[0])
    soc = SocLimits(config.control.min_soc_percent, config.control.max_soc_percent)
    return await connect_site(settings, soc=soc)


def open_meter(config: Config) -> ObservedMeter | None:
    """The site meter on the first inverter's bus, when one is configured (and the bus is Modbus)."""
    meter = config.meter
    if meter is None:
        return None
    first = inverter_settings(config.inverter)
    endpoint = first.endpoint
    if endpoint is None:
        return None  # a simulated inverter has no bus for a meter
    # Imported here: a box without a meter does not load it.
    from hal.inverter.modbus_inverter import connect_meter

    register = None
    if meter.register is not None:
        r = meter.register
        register = MeterRegister(r.address, r.type, r.word_order, r.registers == "input", r.scale)
    reader = connect_meter(
        endpoint, first.bus, meter.unit_id, import_positive=meter.import_positive, register=register
    )
    return ObservedMeter(reader)
