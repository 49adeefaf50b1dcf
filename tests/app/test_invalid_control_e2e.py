"""A list with one invalid control: the gateway (in-process) still drives the battery with the valid event
in force and answers the invalid one 253. Lab 2030.5 server over mutual TLS, SunSpec simulator over
Modbus TCP, both on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from app.config import load_config
from app.gateway import Gateway
from app.sep.der import DERControlBase
from app.sep.response import ResponseStatus
from tests.app.test_gateway_lifecycle import until
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

CONTRACTED = 1  # lab program index (primacy 1)


async def test_one_invalid_control_does_not_stop_the_valid_event_in_force(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer, caplog: pytest.LogCaptureFixture
) -> None:
    tree = lab_server.tree
    now = tree.now()
    valid = tree.add_control(CONTRACTED, start=now - timedelta(seconds=5), duration=600, target_w=-2000.0)
    # hours away, and opModFixedW outside SignedPerCent (-10000..10000): the codec refuses the value
    invalid = tree.add_control(
        CONTRACTED, start=now + timedelta(hours=3), duration=600, base=DERControlBase(opModFixedW=20000)
    )
    gw = Gateway(
        load_config(write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state"))
    )
    run = asyncio.create_task(gw.run())

    def answers(mrid: str) -> list[int]:
        return [r.status or 0 for r in tree.responses if r.subject.upper() == mrid.upper()]

    try:
        with caplog.at_level(logging.WARNING, logger="app.control.engine"):
            # the valid event reaches the battery's registers (model 704 WSet, enabled)
            assert await until(lambda: battery.device.get(704, "WSetEna") == 1, 20), gw.status()
            assert battery.device.battery.target_w == pytest.approx(-2000, abs=10)
            # the invalid one is answered 253 (after "received", as responseRequired 03 asks)
            assert await until(lambda: ResponseStatus.REJECTED_INVALID in answers(invalid.mRID), 10)
            assert await until(lambda: 2 in answers(valid.mRID), 10)
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)
    assert answers(invalid.mRID) == [1, ResponseStatus.REJECTED_INVALID]
    assert answers(valid.mRID) == [1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"event {invalid.mRID.upper()}: rejected: invalid, "
        "DERControlBase.opModFixedW: expected an integer in -10000..10000, got '20000'"
    ]
