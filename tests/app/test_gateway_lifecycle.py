"""The gateway's own behaviour around its parts: identity arriving and changing, the LED's mapping,
commissioning, the reset button, and a restart during an outage. In-process, against the lab server
and the SunSpec simulator on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from app.client.errors import ConnectionFailed, NotAuthorized, ServerBusy, TlsHandshakeError
from app.client.poller import SERVER_PART
from app.config import load_config
from app.gateway import EXIT_RESTART, Gateway
from app.store import open_store
from app.telemetry.links import LINKS_FILE, LINKS_KEY
from hal.gpio import LedState
from wattsmart_lab.gateway_config import free_port, write_lab_config
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer


async def until(predicate: Callable[[], bool], within: float) -> bool:
    for _ in range(int(within / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def gateway(path: Path) -> Gateway:
    gw = Gateway(load_config(path))
    gw.identity_check_s = 0.2
    return gw


async def test_a_box_without_a_certificate_waits_for_one_then_restarts_on_it(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    path = write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state")
    text = path.read_text().replace(str(pki.client("client").cert), str(certs / "client.crt"))
    path.write_text(text.replace(str(pki.client("client").key), str(certs / "client.key")))
    gw = gateway(path)
    run = asyncio.create_task(gw.run())
    try:
        assert await until(lambda: gw.inverter is not None and gw.inverter.telemetry is not None, 10)
        assert gw.certificate.lfdi is None and gw.engine is None
        assert "client.crt" in str(gw.certificate.problem)
        assert gw.led_state() is LedState.NOT_COMMISSIONED
        assert "identity" in gw.status()["identity"]["problem"]
        assert not run.done()  # waiting, not exited: the LED and status page tell the installer
        shutil.copy(pki.client("client").cert, certs / "client.crt")
        shutil.copy(pki.client("client").key, certs / "client.key")
        assert await asyncio.wait_for(run, 10) == EXIT_RESTART
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 15)
    # restarted (by systemd) on the new certificate, it controls the battery as usual
    gw = gateway(path)
    run = asyncio.create_task(gw.run())
    try:
        assert await until(lambda: gw.server.tree is not None and gw.server.tree.registered, 10)
        assert gw.certificate.lfdi == LabServer.lfdi_of(pki.client("client"))
    finally:
        gw.supervisor.stopping.set()
        assert await asyncio.wait_for(run, 15) == 0


async def test_a_replaced_certificate_file_restarts_the_gateway(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("client.crt", "client.key"):
        shutil.copy(pki.folder / name, certs / name)
    path = write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state")
    text = path.read_text().replace(str(pki.client("client").cert), str(certs / "client.crt"))
    path.write_text(text.replace(str(pki.client("client").key), str(certs / "client.key")))
    gw = gateway(path)
    run = asyncio.create_task(gw.run())
    assert await until(lambda: gw.server.tree is not None, 10)
    shutil.copy(pki.folder / "other.crt", certs / "client.crt")
    shutil.copy(pki.folder / "other.key", certs / "client.key")
    assert await asyncio.wait_for(run, 10) == EXIT_RESTART


async def test_led_follows_the_server_and_the_inverter(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    gw = gateway(write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state"))
    run = asyncio.create_task(gw.run())
    try:
        assert await until(lambda: gw.led_state() is LedState.OK, 15), gw.status()
        # the LED decides from the kind each error reports as, never from its words
        for error, led in (
            (NotAuthorized("GET /edev: 403"), LedState.NOT_REGISTERED),
            (ConnectionFailed("no route", no_network=True), LedState.NO_NETWORK),
            (ConnectionFailed("Network is unreachable"), LedState.NO_SERVER),
            (ServerBusy("503"), LedState.NO_SERVER),
            (TlsHandshakeError("refused"), LedState.NO_SERVER),
        ):
            gw.health.problem(SERVER_PART, f"{type(error).__name__}: {error}", error.kind)
            assert gw.led_state() is led, error
        gw.health.ok(SERVER_PART)
        await battery.cut()
        assert gw.inverter is not None
        await gw.self_test()  # the button's self-test reads the inverter now
        assert gw.led_state() is LedState.NO_INVERTER
        await battery.restore()
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)


async def test_commissioning_moves_the_status_page_for_a_while(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    port = free_port()
    path = write_lab_config(
        tmp_path / "gateway.yaml",
        lab_server,
        battery.port,
        tmp_path / "state",
        status_port=port,
        status_page={"host": "127.0.0.1", "commissioning_host": "localhost", "commissioning_s": 1},
    )
    gw = gateway(path)
    run = asyncio.create_task(gw.run())

    def host() -> str:
        return gw.status_page.host if gw.status_page is not None else ""

    try:
        assert await until(lambda: gw.led_state() is LedState.OK, 15)
        await gw.commission()
        assert host() == "localhost" and gw.led_state() is LedState.COMMISSIONING

        def fetch() -> int:
            with urllib.request.urlopen(f"http://localhost:{port}/api/status", timeout=5) as reply:
                return int(reply.status)

        assert await asyncio.to_thread(fetch) == 200
        assert await until(lambda: host() == "127.0.0.1", 5)  # back after commissioning_s
        assert gw.led_state() is not LedState.COMMISSIONING
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)


def test_reset_keeps_the_identity_and_the_updater(tmp_path: Path, lab_server: LabServer) -> None:
    state = tmp_path / "state"
    path = write_lab_config(
        tmp_path / "gateway.yaml", lab_server, 5020, state, ota={"state_dir": str(state / "ota")}
    )
    gw = Gateway(load_config(path))
    for name in ("identity/current/key.pem", "ota/state.json", "control.sqlite3", LINKS_FILE, "outbox/x"):
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text("x")
    gw.reset_state()
    left = sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file())
    assert left == ["identity/current/key.pem", "ota/state.json"]


async def test_restart_during_an_outage_keeps_sampling_into_the_outbox(
    tmp_path: Path, lab_server: LabServer, battery: SunSpecServer
) -> None:
    path = write_lab_config(
        tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state", telemetry={"interval_s": 1}
    )
    first = gateway(path)
    run = asyncio.create_task(first.run())
    assert await until(lambda: first.store is not None and first.store.state.get(LINKS_KEY) is not None, 15)
    first.supervisor.stopping.set()
    assert await asyncio.wait_for(run, 15) == 0

    await lab_server.down()
    second = gateway(path)
    run = asyncio.create_task(second.run())
    try:
        assert await until(lambda: second.led_state() is LedState.NO_SERVER, 10)
        await asyncio.sleep(3.5)  # three or more 1-s ticks while the server is down
    finally:
        second.supervisor.stopping.set()
        await asyncio.wait_for(run, 15)
    store = open_store(second.config.state_dir)
    try:
        backlog = store.outbox.backlog("W")
    finally:
        store.close()
    assert backlog >= 3


async def test_the_status_page_shows_bounded_server_inputs(
    tmp_path: Path, pki: Pki, lab_server: LabServer, battery: SunSpecServer
) -> None:
    lab_server.tree.poll_rates.mup = 4294967295
    lab_server.tree.time_offset = timedelta(days=76 * 365)
    gw = gateway(write_lab_config(tmp_path / "gateway.yaml", lab_server, battery.port, tmp_path / "state"))
    run = asyncio.create_task(gw.run())
    try:
        assert await until(lambda: gw.server.tree is not None and gw.server.tree.registered, 10)
        server = gw.status()["server"]
    finally:
        gw.supervisor.stopping.set()
        assert await asyncio.wait_for(run, 15) == 0
    assert abs(server["clock offset s"] - 76 * 365 * 86400) <= 2
    shown = server["bounded inputs"]
    assert "/mup pollRate 4294967295 s from the server is above the ceiling; using 86400 s" in shown
    assert any(line.startswith(f"server clock is +{76 * 365 * 86400 // 1000}") for line in shown), shown
