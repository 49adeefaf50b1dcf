"""`wattsmart-gateway check` on a site: every inverter read, the one that does not answer named, and the
site meter checked (two inverters and a meter on one Modbus TCP endpoint, no gateway running)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.commissioning.check import check_config, check_inverter, check_meter, run_checks
from tests.app.test_check import by_name
from tests.app.test_site_e2e import BIG, METER, SMALL, Load, write_site_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

CHECKS = [check_config, check_inverter, check_meter]


@pytest.fixture
async def site() -> AsyncIterator[SunSpecServer]:
    async with SunSpecServer.site([BIG, SMALL], meter_id=METER, load=Load(1500.0)) as server:
        yield server


async def test_a_site_passes_then_names_what_does_not_answer(
    tmp_path: Path,
    lab_server: LabServer,
    site: SunSpecServer,
) -> None:
    path = write_site_config(tmp_path / "gateway.yaml", lab_server, site)
    results = by_name(await run_checks(path, CHECKS))
    assert results["inverter"].ok is True, results["inverter"].line()
    assert results["inverter"].detail.startswith("2 inverters on the bus; inverter reports 8000 W discharge")
    assert results["site meter"].ok is True and "site exports -1500 W" in results["site meter"].detail

    site.unit(2).faults.silent = True
    site.meters[METER].faults.silent = True
    results = by_name(await run_checks(path, CHECKS))
    assert (
        results["inverter"].ok is False
        and "inverter[1] (unit 2) does not answer" in results["inverter"].detail
    )
    assert results["site meter"].ok is False and f"unit id ({METER})" in results["site meter"].fix
