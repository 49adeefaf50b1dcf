"""The site the configuration describes: one inverter or several driven as one, and the site meter."""

from __future__ import annotations

from app.config import Config
from app.hardware import inverter_settings
from app.meter import ObservedMeter
from hal.inverter import SafeInverter, connect_inverter
from hal.inverter.factory import connect_site
from hal.inverter.site import SocLimits
from hal.meter import MeterRegister


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
    link = first.serial if first.transport == "rtu" else first.tcp
    if link is None:
        return None  # a simulated inverter has no bus for a meter
    # Imported here: a box without a meter does not load it.
    from hal.inverter.modbus_inverter import connect_meter

    register = None
    if meter.register is not None:
        r = meter.register
        register = MeterRegister(r.address, r.type, r.word_order, r.registers == "input", r.scale)
    reader = connect_meter(
        link, first.bus, meter.unit_id, import_positive=meter.import_positive, register=register
    )
    return ObservedMeter(reader)
