"""A box that is not commissioned: up, its own LED, commissioning opens a page that says what is
missing and how to fix it, and it never drives the battery. In-process, on 127.0.0.1: the
gateway against the SunSpec simulator (Modbus TCP) and, for the box without a usable
configuration, only the LED, the button and the status page.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest
import yaml

from app.commissioning import unconfigured
from app.commissioning.missing import SECTION, Missing, placeholder_url, what_is_missing
from app.commissioning.page import render_page
from app.config import load_config
from app.gateway import EXIT_RESTART, Gateway
from app.identity import IdentityStore
from hal.gpio import LedState
from tests.identity.conftest import Ca, pem
from wattsmart_lab.gateway_config import free_port, lab_config
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer


async def until(predicate: Callable[[], bool], within: float) -> bool:
    for _ in range(int(within / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def fresh_box(tmp_path: Path, lab: LabServer, battery: SunSpecServer, ca_file: Path, port: int) -> Path:
    """A config as a fresh box has it: the identity store's paths, but nothing in the store yet."""
    state = tmp_path / "state"
    data = lab_config(
        lab,
        battery.port,
        state,
        status_port=port,
        status_page={"host": "127.0.0.1", "commissioning_host": "localhost", "commissioning_s": 600},
    )
    data["server"] |= {
        "ca_file": str(ca_file),
        "cert_file": str(state / "identity/current/cert.pem"),
        "key_file": str(state / "identity/current/key.pem"),
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def test_a_box_without_a_certificate_is_not_commissioned_and_says_what_to_do(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    root = Ca.root("Utility SERCA")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pem(root.cert))
    port = free_port()
    path = fresh_box(tmp_path, lab_server, battery, ca_file, port)
    gw = Gateway(load_config(path), config_path=path)
    gw.identity_check_s = 0.2
    run = asyncio.create_task(gw.run())
    try:
        assert await until(lambda: gw.inverter is not None and gw.inverter.telemetry is not None, 10)
        # the status page opens after the first reading and the store: commissioning needs it up
        assert await until(lambda: gw.status_page is not None, 10)
        # the key is born on the box at once, so the CSR can go to the CA straight away
        pending = IdentityStore.from_config(gw.config).pending()
        assert pending is not None and pending.csr.is_file()
        assert [m.what for m in gw.missing] == ["certificate"]
        assert gw.led_state() is LedState.NOT_COMMISSIONED
        status = gw.status()
        assert status["state"] == "not commissioned"
        line = status[SECTION]["certificate"]
        assert str(pending.csr) in line and f"wattsmart-gateway identity install --config {path}" in line
        assert gw.engine is None and not run.done()

        # commissioning mode: the LED says so, and the page (on the site address) says what is missing
        await gw.commission()
        assert gw.led_state() is LedState.COMMISSIONING
        page = await asyncio.to_thread(fetch, f"http://localhost:{port}/")
        assert "not commissioned" in page and "identity install" in page and str(pending.csr) in page
        api = json.loads(await asyncio.to_thread(fetch, f"http://localhost:{port}/api/status"))
        assert api["led"] == "COMMISSIONING" and "certificate" in api[SECTION]

        # a few samples later, still nothing was ever written to the battery
        await asyncio.sleep(1.0)
        assert battery.device.writes == []

        # the installer installs the certificate the CA signed: the gateway restarts on it
        IdentityStore.from_config(gw.config).install(pem(root.sign_csr(pending.csr)))
        assert await asyncio.wait_for(run, 10) == EXIT_RESTART
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 15)
    assert battery.device.writes == []


async def test_a_box_without_the_utility_ca_shows_its_lfdi_and_never_drives_the_battery(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    ca_file = tmp_path / "utility-ca.pem"
    path = tmp_path / "gateway.yaml"
    data = lab_config(lab_server, battery.port, tmp_path / "state")
    data["server"]["ca_file"] = str(ca_file)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    gw = Gateway(load_config(path), config_path=path)
    gw.identity_check_s = 0.2
    run = asyncio.create_task(gw.run())
    try:
        assert await until(lambda: gw.inverter is not None and gw.inverter.telemetry is not None, 10)
        assert gw.certificate.lfdi == LabServer.lfdi_of(lab_server.pki.client("client"))
        assert [m.what for m in gw.missing] == ["server.ca_file"]
        section = gw.status()[SECTION]
        assert section["LFDI"] == gw.certificate.lfdi and isinstance(section["SFDI"], int)
        page = render_page(gw.status(), "", time.time(), UTC)
        card = page.split('id="not-commissioned"', 1)[1].split("</section>", 1)[0]
        assert "<svg" in card and gw.certificate.lfdi in card and "server.ca_file" in card  # the QR code
        assert gw.led_state() is LedState.NOT_COMMISSIONED and gw.engine is None
        ca_file.write_bytes(lab_server.pki.ca.cert.read_bytes())  # the installer copies the CA in
        assert await asyncio.wait_for(run, 10) == EXIT_RESTART
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 15)
    assert battery.device.writes == []


def test_what_is_missing_names_each_key_and_its_fix(tmp_path: Path, lab_server: LabServer) -> None:
    data = lab_config(lab_server, 502, tmp_path / "state")
    data["server"] |= {"dcap_url": "https://dgbms.utility.example/dcap", "ca_file": str(tmp_path / "no.pem")}
    data["server"] |= {"cert_file": str(tmp_path / "state/identity/current/cert.pem")}
    data["server"] |= {"key_file": str(tmp_path / "state/identity/current/key.pem")}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_config(path)
    missing = what_is_missing(config, IdentityStore.from_config(config), "no certificate", path)
    assert [m.what for m in missing] == ["server.dcap_url", "server.ca_file", "certificate"]
    assert "identity init --config" in missing[2].fix and "no.pem" in missing[1].problem
    assert placeholder_url("https://dgbms.example.com/x") and not placeholder_url(lab_server.dcap_url)
    with pytest.raises(ValueError, match="needs"):
        Missing("certificate", "", "fix")


async def test_a_box_without_a_usable_configuration_stays_up_and_takes_up_a_fixed_one(
    tmp_path: Path, lab_server: LabServer
) -> None:
    port = free_port()
    path = tmp_path / "gateway.yaml"
    good = lab_config(lab_server, 502, tmp_path / "state", status_port=port)
    bad = {**good, "inverter": {"transport": "carrier-pigeon"}}
    bad["status_page"] = {**good["status_page"], "commissioning_host": "localhost"}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    box = unconfigured.Unconfigured(path, "inverter.transport: got 'carrier-pigeon'", check_s=0.1)
    assert unconfigured.EXIT_RESTART == EXIT_RESTART
    run = asyncio.create_task(box.run())
    try:
        assert await until(lambda: box.status_page is not None, 5)
        assert box.status_page is not None and box.status_page.port == port  # the file's own port
        assert box.led_state() is LedState.NOT_COMMISSIONED
        await box.commission()
        assert box.led_state() is LedState.COMMISSIONING
        page = await asyncio.to_thread(fetch, f"http://localhost:{port}/")
        assert "not commissioned" in page and "carrier-pigeon" in page
        assert f"wattsmart-gateway validate --config {path}" in page
        # still broken after an edit: it says so and goes on waiting
        path.write_text(yaml.safe_dump({**bad, "inverter": {"transport": "usb"}}), encoding="utf-8")
        assert await until(lambda: "'usb'" in box.missing[0].problem, 5)
        assert not run.done()
        path.write_text(yaml.safe_dump(good), encoding="utf-8")
        assert await asyncio.wait_for(run, 5) == EXIT_RESTART
    finally:
        box.supervisor.stopping.set()
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 10)


def test_the_command_stays_up_on_a_bad_configuration(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "server:\n  dcap_url: https://127.0.0.1:1/dcap\n  ca_file: ca.pem\n  cert_file: c.pem\n"
        "  key_file: k.pem\ninverter:\n  transport: usb\ngpio:\n  backend: none\n"
        "status_page:\n  port: 0\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("wattsmart-gateway: configuration error:") and "'usb'" in first
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
        reader.start()
        for _ in range(400):  # up to 20 s, never a hang if it does not get ready
            if any("ready" in line for line in lines) or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert any("ready" in line for line in lines), lines
        assert proc.poll() is None  # up, not exited: the LED and the page tell the installer
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0 and out == ""
