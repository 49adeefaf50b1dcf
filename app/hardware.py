"""Turn the gateway's configuration into the HAL's own settings objects (the one place that maps them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hal.inverter import InverterSettings, Nameplate
from hal.modbus import BusSettings, SerialSettings, TcpSettings
from hal.rs485 import Rs485Settings

if TYPE_CHECKING:  # app.config calls this module to check its inverter section
    from app.config import InverterConfig


def inverter_settings(cfg: InverterConfig, ratings_max_age_s: float = 60.0) -> InverterSettings:
    """HAL settings for the configured inverter; raises ValueError with the HAL's reason.

    `ratings_max_age_s`: the telemetry's ratings interval, so the setpoints obey ratings as fresh.
    """
    serial = tcp = None
    if cfg.transport == "rtu":
        s = cfg.serial
        rs485 = None
        if s.rs485 is not None:
            r = s.rs485
            rs485 = Rs485Settings(
                r.rts_on_send, r.rts_after_send, r.delay_before_send_ms, r.delay_after_send_ms, r.rx_during_tx
            )
        serial = SerialSettings(s.port, s.baudrate, s.parity, s.stopbits, s.bytesize, rs485=rs485)
    elif cfg.transport == "tcp":
        tcp = TcpSettings(cfg.host, cfg.port)
    return InverterSettings(
        transport=cfg.transport,
        profile=cfg.profile,
        device_id=cfg.unit_id,
        serial=serial,
        tcp=tcp,
        bus=BusSettings(timeout_s=cfg.timeout_s, retries=cfg.retries),
        revert_timeout_s=float(cfg.revert_timeout_s),
        ratings_max_age_s=ratings_max_age_s,
        nameplate=None
        if cfg.nameplate is None
        else Nameplate(cfg.nameplate.max_discharge_w, cfg.nameplate.max_charge_w),
    )
