"""The whole gateway holds a CSIP-AUS export limit at the battery: the lab 2030.5 server over mutual TLS,
the gateway in-process, the SunSpec simulator over Modbus TCP, all on 127.0.0.1.

The executor reaches the guard itself (no wrapper between them any more), so a cap-only control is a
704 WMaxLimPct limit under which the battery keeps its own mode, not a setpoint.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.config import load_config
from app.gateway import Gateway
from app.sep.der import DERControlBase
from app.sep.types import ActivePower
from tests.app.test_gateway_lifecycle import until
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

CONTRACTED = 1  # the lab's program of primacy 1


async def test_the_running_gateway_holds_an_export_limit_at_the_battery(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    tree = lab_server.tree
    limit = DERControlBase(opModExpLimW=ActivePower(value=15, multiplier=2))  # 1500 W
    tree.add_control(CONTRACTED, start=tree.now(), duration=600, base=limit)
    path = write_lab_config(
        tmp_path / "gateway.yaml",
        lab_server,
        battery.port,
        tmp_path / "state",
        inverter={"timeout_s": 0.5, "nameplate": {"max_discharge_w": 5000, "max_charge_w": 5000}},
    )
    gw = Gateway(load_config(path))
    run = asyncio.create_task(gw.run())
    try:
        device = battery.device
        assert await until(lambda: device.get(704, "WMaxLimPctEna") == 1, 20), gw.status()
        assert device.get(704, "WSetEna") == 0  # a limit, not a setpoint: the battery's own mode
        assert gw.inverter is not None and gw.inverter.setpoint_w is None
        assert gw.status()["control"]["mode"] == "battery's own"
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)
