"""The gateway's certificate trial against the lab TLS 2030.5 server: the real session and poller,
confirmed once the server lists our EndDevice, fallen back when the server refuses it (by kind)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from app.client.clock import ServerClock
from app.client.poller import SERVER_PART
from app.client.server import Server
from app.client.session import Session
from app.health import Health, Kind
from app.identity import CsrProfile
from app.identity.trial import CertificateTrial
from tests.control.fakes import wait_until
from tests.identity.test_hot_pickup import _sign, _store
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer

CHECK_S = 0.05


async def _trial_outcome(lab_server: LabServer, trial: CertificateTrial, health: Health) -> str:
    files = trial.files()
    base = lab_server.client_config(request_timeout_s=2.0)
    session = Session(trial.server_config(files, base), health=health, rng=random.Random(1))
    server = Server(ServerClock())
    async with session, server.serving(session):
        registered = lambda: bool(server.tree and server.tree.registered)  # noqa: E731
        return await asyncio.wait_for(trial.watch(files, registered, CHECK_S), 10.0)


async def test_a_certificate_the_server_accepts_is_confirmed(
    lab_server: LabServer, pki: Pki, tmp_path: Path
) -> None:
    store = _store(tmp_path, pki)
    store.install(_sign(store.prepare(CsrProfile()).csr, pki.ca))
    store.install(_sign(store.prepare(CsrProfile()).csr, pki.ca))
    health = Health()
    trial = CertificateTrial(store, store.current().cert, health, SERVER_PART)
    assert trial.load() == store.current().identity.lfdi and store.on_trial()
    assert trial.lfdi is not None
    lab_server.tree.register(trial.lfdi)  # the utility registered the new LFDI
    files = trial.files()
    base = lab_server.client_config(request_timeout_s=2.0)
    session = Session(trial.server_config(files, base), health=health, rng=random.Random(1))
    server = Server(ServerClock())
    async with session, server.serving(session):
        registered = lambda: bool(server.tree and server.tree.registered)  # noqa: E731
        watch = asyncio.create_task(trial.watch(files, registered, CHECK_S))
        await wait_until(lambda: not store.on_trial(), 10.0)
        assert not watch.done()  # confirmed: the session goes on, no restart
        watch.cancel()
    assert health.kind(SERVER_PART) is None


async def test_a_certificate_the_server_refuses_falls_back_by_the_problems_kind(
    lab_server: LabServer, pki: Pki, tmp_path: Path
) -> None:
    store = _store(tmp_path, pki)
    store.install(_sign(store.prepare(CsrProfile()).csr, pki.ca))
    good = store.current()
    assert pki.other_ca is not None
    store.install(_sign(store.prepare(CsrProfile()).csr, pki.other_ca))  # unknown to the server
    health = Health()
    trial = CertificateTrial(store, good.cert, health, SERVER_PART)
    trial.load()
    reason = await _trial_outcome(lab_server, trial, health)
    assert reason == "fell back to the previous client certificate"
    assert health.kind(SERVER_PART) in {Kind.CERTIFICATE, Kind.NOT_REGISTERED}
    assert store.current() == good and not store.on_trial()
