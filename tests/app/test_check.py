"""`wattsmart-gateway check`: all ✓ against the running lab; the right ✗ and fix when something is wrong."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.commissioning.check import DEFAULT_CHECKS, CheckResult, run_checks
from app.config import load_config
from app.gateway import Gateway
from wattsmart_lab.gateway_config import free_port, write_lab_config
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer


def write_config(tmp_path: Path, pki: Pki, server: LabServer, battery: SunSpecServer, client: str) -> Path:
    return write_lab_config(
        tmp_path / "gateway.yaml",
        server,
        battery.port,
        tmp_path / "state",
        client=client,
        inverter={"timeout_s": 0.3, "retries": 0},
        gpio={"backend": "fake"},
    )


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


async def test_all_pass_against_the_running_lab(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    results = await run_checks(write_config(tmp_path, pki, lab_server, battery, "client"), DEFAULT_CHECKS)
    assert [r.ok for r in results] == [True] * len(DEFAULT_CHECKS), "\n".join(r.line() for r in results)
    lines = "\n".join(r.line() for r in results)
    assert LabServer.lfdi_of(pki.client("client")) in lines
    assert "fix:" not in lines


async def test_stopped_server_and_dead_inverter_say_what_to_fix(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    path = write_config(tmp_path, pki, lab_server, battery, "client")
    await lab_server.down()
    await battery.cut()
    results = by_name(await run_checks(path, DEFAULT_CHECKS))
    assert results["2030.5 server"].ok is False
    assert "check the network" in results["2030.5 server"].fix
    assert results["registration"].ok is None
    assert results["inverter"].ok is False
    assert f"127.0.0.1:{battery.port}" in results["inverter"].fix
    assert results["client certificate"].ok is True


async def test_unregistered_and_untrusted_certificates(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    results = by_name(
        await run_checks(write_config(tmp_path, pki, lab_server, battery, "other"), DEFAULT_CHECKS)
    )
    assert results["2030.5 server"].ok is True
    assert results["registration"].ok is False
    assert LabServer.lfdi_of(pki.client("other")) in results["registration"].fix

    results = by_name(
        await run_checks(write_config(tmp_path, pki, lab_server, battery, "foreign"), DEFAULT_CHECKS)
    )
    assert results["2030.5 server"].ok is False
    assert "ca_file" in results["2030.5 server"].fix or "LFDI" in results["2030.5 server"].fix


async def test_expired_and_expiring_certificates(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    results = by_name(
        await run_checks(write_config(tmp_path, pki, lab_server, battery, "expired"), DEFAULT_CHECKS)
    )
    assert results["client certificate"].ok is False
    assert "expired on" in results["client certificate"].detail
    assert results["2030.5 server"].ok is None  # not tried without a usable certificate

    path = write_config(tmp_path, pki, lab_server, battery, "client")
    soon = datetime.now(UTC) + timedelta(days=3650 - 29)
    results = by_name(await run_checks(path, DEFAULT_CHECKS[:3], now=soon))
    assert results["client certificate"].ok is False
    assert "expires in" in results["client certificate"].detail
    assert "identity init" in results["client certificate"].fix


async def test_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("server: {dcap_url: ftp://x}\n", encoding="utf-8")
    results = await run_checks(path, DEFAULT_CHECKS)
    assert results[0].ok is False
    assert "server.ca_file" in results[0].detail or "dcap_url" in results[0].detail
    assert all(r.ok is None for r in results[2:])


async def test_on_a_running_box_the_inverter_and_pins_are_left_to_the_gateway(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    path = write_lab_config(
        tmp_path / "gateway.yaml",
        lab_server,
        battery.port,
        tmp_path / "state",
        status_port=free_port(),
        gpio={"backend": "fake"},
    )
    gw = Gateway(load_config(path))
    run = asyncio.create_task(gw.run())
    try:
        for _ in range(100):
            if gw.status_page is not None and gw.inverter is not None and gw.inverter.telemetry is not None:
                break
            await asyncio.sleep(0.05)
        results = by_name(await run_checks(path, DEFAULT_CHECKS))
        assert results["inverter"].ok is True
        assert results["inverter"].detail.startswith("seen by the running gateway")
        assert results["LED and button"].detail.startswith("in use by the running gateway")
        await battery.cut()
        await gw.self_test()  # the button's self-test reads the inverter now and records the failure
        results = by_name(await run_checks(path, DEFAULT_CHECKS))
        assert results["inverter"].ok is False
        assert "the running gateway cannot read it" in results["inverter"].detail
        await battery.restore()
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)


async def test_the_inverter_check_shows_its_ratings_beside_the_nameplate(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    path = write_lab_config(
        tmp_path / "gateway.yaml",
        lab_server,
        battery.port,
        tmp_path / "state",
        inverter={"timeout_s": 0.3, "nameplate": {"max_discharge_w": 3000, "max_charge_w": 2000}},
    )
    result = by_name(await run_checks(path, DEFAULT_CHECKS))["inverter"]
    assert result.ok is True
    assert result.detail.startswith(
        "inverter reports 5000 W discharge / 5000 W charge; nameplate 3000 W / 2000 W; "
        "setpoints limited to 3000 W / 2000 W; now"
    )
    battery.faults.pinned[(702, "W_SF")] = 10  # a legal scale factor that makes 5 kW into 5e13 W
    result = by_name(await run_checks(path, DEFAULT_CHECKS))["inverter"]
    assert result.ok is False
    assert "inverter ratings not trusted" in result.detail and "limited to 3000 W / 2000 W" in result.detail
    assert "inverter.nameplate" in result.fix
