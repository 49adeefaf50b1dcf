"""Under the csip-aus profile, every document the lab server receives in a simulated half hour (mirrors,
readings, DERStatus, DERCapability, DERSettings, DERAvailability) is valid against the CSIP-AUS schema;
under wattsmart the same run is plain sep.xsd and carries no csipaus element."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest

from app.client.session import Session
from app.config import Config
from app.health import Health
from app.sep import parse
from app.sep.der import DERCapability, DERSettings
from app.telemetry import TelemetryService
from tests.telemetry.conftest import START, Device
from tests.telemetry.helpers import running
from tests.telemetry.simclock import SimClock
from wattsmart_lab.server import LabServer
from wattsmart_lab.sim import SimInverter


@pytest.mark.parametrize("profile", ["csip-aus", "wattsmart"])
async def test_every_document_sent_is_valid_for_the_profile(
    profile: str,
    lab: LabServer,
    http: Session,
    device: Device,
    clock: SimClock,
    inverter: SimInverter,
    make_config: Callable[..., Config],
    assert_valid: Callable[[bytes], None],
    assert_valid_csipaus: Callable[[bytes], None],
) -> None:
    config = make_config()
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, profile=profile))
    links = dataclasses.replace(
        device.links, der_availability=lab.tree.href(f"/edev/{device.index}/der/0/dera")
    )
    service = TelemetryService(config, inverter, http, links, clock, Health(), device.lfdi)
    async with running(service) as stop:
        await clock.run_until(START + timedelta(minutes=30))
        await stop()
    sent = [r for r in lab.requests if r.method in ("POST", "PUT")]
    kinds = {r.path.rsplit("/", 1)[-1] for r in sent if r.method == "PUT"}
    assert kinds == {"dercap", "derg", "ders", "dera"}
    assert any(r.path.startswith("/mup/") for r in sent)
    check = assert_valid_csipaus if profile == "csip-aus" else assert_valid
    for request in sent:
        check(request.body)
        assert (b"csipaus" in request.body) == (
            profile == "csip-aus" and request.path.endswith(("dercap", "derg"))
        )
    capability = parse(DERCapability, next(r.body for r in sent if r.path.endswith("dercap")))
    settings = parse(DERSettings, next(r.body for r in sent if r.path.endswith("derg")))
    expected = 0x0F if profile == "csip-aus" else None
    assert capability.doeModesSupported == expected and settings.doeModesEnabled == expected
