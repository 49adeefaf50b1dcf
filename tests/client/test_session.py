"""The server port the gateway uses, over a real Session, end to end on the real clock: snapshot,
server time, writes, a session switch, close."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import timedelta

import pytest

from app.client import errors
from app.client.http import HttpClient
from app.client.server import Server, serve
from app.client.session import Session
from app.config import ServerConfig
from app.sep.dcap import DeviceCapability
from app.sep.der import DERStatus, StateOfChargeStatusType
from app.sep.response import DERControlResponse, ResponseStatus
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer


async def test_session_end_to_end(lab_server: LabServer, server_config: ServerConfig) -> None:
    lab_server.tree.time_offset = timedelta(seconds=-90)
    control = lab_server.tree.add_control(1, start=lab_server.tree.now(), duration=300, fixed_w=2500)
    one = Session(server_config, rng=random.Random(2))
    async with serve(one) as session:
        tree = await asyncio.wait_for(session.wait_for(lambda t: t.registered), 5.0)
        assert session.tree is tree
        assert abs((session.now() - lab_server.tree.now()).total_seconds()) < 1.5
        branch = next(p for p in tree.programs if p.primacy == 1)
        got = branch.active_controls[0]
        assert got.mRID == control.mRID and got.replyTo
        now = session.now().replace(microsecond=0)
        response = DERControlResponse(
            createdDateTime=now,
            endDeviceLFDI=one.identity.lfdi,
            status=ResponseStatus.EVENT_RECEIVED,
            subject=got.mRID,
        )
        assert await session.post(got.replyTo, response)
        assert tree.der is not None and tree.der.DERStatusLink is not None
        status = DERStatus(
            readingTime=now, stateOfChargeStatus=StateOfChargeStatusType(dateTime=now, value=8000)
        )
        await session.put(tree.der.DERStatusLink.href, status)
    assert lab_server.tree.responses[0].subject == control.mRID
    assert lab_server.tree.stored[tree.der.DERStatusLink.href] is not None


async def test_the_server_port_follows_a_session_switch(
    lab_server: LabServer, server_config: ServerConfig
) -> None:
    server = Server(Session(server_config).server_clock)
    with pytest.raises(errors.ConnectionFailed, match="no session"):
        await server.get("/dcap", DeviceCapability)
    trees = aiter(server.snapshots())
    for seed in (1, 2):  # the second session's first snapshot reaches the same reader
        async with Session(server_config, rng=random.Random(seed)) as session, server.serving(session):
            tree = await asyncio.wait_for(anext(trees), 5.0)
            assert tree is session.poller.tree and server.tree is tree
            assert (await server.get("/dcap", DeviceCapability)).href == "/dcap"
        assert server.tree is None
    with pytest.raises(errors.ConnectionFailed):
        await server.post("/rsps/1/rsp", object())


async def test_missing_certificate_is_a_config_error(server_config: ServerConfig, pki: Pki) -> None:
    broken = dataclasses.replace(server_config, cert_file=pki.folder / "absent.crt")
    with pytest.raises(errors.TlsConfigError, match=r"absent\.crt"):
        Session(broken)


async def test_tls13_refusal_says_what_to_check(pki: Pki) -> None:
    async with LabServer(pki, tls13=True) as server:
        cfg = server.client_config("foreign")
        async with HttpClient(cfg) as http:
            with pytest.raises(errors.SepError, match="client certificate"):
                await http.get("/dcap", DeviceCapability)
