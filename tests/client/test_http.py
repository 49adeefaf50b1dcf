"""HTTP edge against the lab server: content type, size and time limits, status mapping, writes."""

from __future__ import annotations

import errno
import socket
import time
from datetime import UTC, datetime

import pytest

from app.client import errors
from app.client.http import HttpClient, no_network
from app.config import ServerConfig
from app.health import Kind
from app.sep.dcap import DeviceCapability
from app.sep.der import DERStatus, StateOfChargeStatusType
from app.sep.metering_mirror import MirrorUsagePoint
from app.sep.tm import Time
from wattsmart_lab.server import LabServer

ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<DeviceCapability xmlns="urn:ieee:std:2030.5:ns" href="&lol3;"/>"""


@pytest.mark.parametrize("content_type", ["application/sep-exi", "application/xml", "text/html"])
async def test_other_content_types_are_refused(
    lab_server: LabServer, server_config: ServerConfig, content_type: str
) -> None:
    lab_server.wrong_content_type(1, content_type)
    async with HttpClient(server_config) as http:
        with pytest.raises(errors.WrongContentType, match=content_type):
            await http.get("/dcap", DeviceCapability)
        assert await http.get("/dcap", DeviceCapability)  # the next answer is fine again


async def test_every_request_asks_for_sep_xml(lab_server: LabServer, server_config: ServerConfig) -> None:
    seen: list[str] = []
    original = lab_server._respond

    async def spy(request, *args):  # type: ignore[no-untyped-def]
        seen.append(request.headers.get("Accept", ""))
        return await original(request, *args)

    lab_server._respond = spy  # type: ignore[method-assign]
    async with HttpClient(server_config) as http:
        await http.get("/dcap", DeviceCapability)
    assert seen == ["application/sep+xml"]


@pytest.mark.parametrize("body", [b"<not-xml", ENTITY_BOMB, b"<Time xmlns='urn:ieee:std:2030.5:ns'/>"])
async def test_hostile_or_malformed_bodies(
    lab_server: LabServer, server_config: ServerConfig, body: bytes
) -> None:
    lab_server.garbage(1, body)
    async with HttpClient(server_config) as http:
        with pytest.raises(errors.MalformedBody):
            await http.get("/dcap", DeviceCapability)


async def test_huge_body_is_abandoned(lab_server: LabServer, server_config: ServerConfig) -> None:
    lab_server.huge(1, size=64 << 20)
    started = time.perf_counter()
    async with HttpClient(server_config) as http:
        with pytest.raises(errors.BodyTooLarge, match="cap"):
            await http.get("/dcap", DeviceCapability)
        assert await http.get("/dcap", DeviceCapability)
    assert time.perf_counter() - started < 5.0


async def test_slow_server_times_out(lab_server: LabServer) -> None:
    cfg = lab_server.client_config(request_timeout_s=0.2)
    lab_server.slow(1, delay_s=1.0)
    async with HttpClient(cfg) as http:
        with pytest.raises(errors.RequestTimeout, match=r"within 0\.2 s"):
            await http.get("/dcap", DeviceCapability)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, errors.ServerBusy),
        (503, errors.ServerBusy),
        (429, errors.ServerBusy),
        (404, errors.Rediscover),
        (410, errors.Rediscover),
        (401, errors.NotAuthorized),
        (403, errors.NotAuthorized),
        (400, errors.Rejected),
    ],
)
async def test_status_mapping(
    lab_server: LabServer, server_config: ServerConfig, status: int, kind: type[Exception]
) -> None:
    lab_server.fail(1, status, retry_after="7")
    async with HttpClient(server_config) as http:
        with pytest.raises(kind) as caught:
            await http.get("/dcap", DeviceCapability)
    assert isinstance(caught.value, errors.SepError) and caught.value.status == status
    if isinstance(caught.value, errors.RetryLater):
        assert caught.value.retry_after == 7.0
    # the leaves say what to do
    assert isinstance(
        caught.value, errors.RetryLater | errors.Rediscover | errors.Reconfigure | errors.Rejected
    )


async def test_refused_connection(lab_server: LabServer, server_config: ServerConfig) -> None:
    await lab_server.down()
    async with HttpClient(server_config) as http:
        with pytest.raises(errors.ConnectionFailed, match="cannot connect") as caught:
            await http.get("/dcap", DeviceCapability)
    # a refusing server is the server's problem, not this box's network
    assert caught.value.kind is Kind.SERVER and not caught.value.no_network


def test_no_network_is_told_from_the_error_number_not_its_words() -> None:
    assert no_network(OSError(errno.ENETUNREACH, "anything"))
    assert no_network(OSError(errno.EHOSTUNREACH, "anything"))
    assert no_network(socket.gaierror(socket.EAI_AGAIN, "anything"))
    assert not no_network(OSError(errno.ECONNREFUSED, "Network is unreachable"))
    assert not no_network(socket.gaierror(socket.EAI_NONAME, "Temporary failure in name resolution"))
    assert errors.ConnectionFailed("x", no_network=True).kind is Kind.NETWORK
    assert errors.NotAuthorized("x").kind is Kind.NOT_REGISTERED
    assert errors.TlsHandshakeError("x").kind is Kind.CERTIFICATE
    assert errors.Rejected("x").kind is Kind.SERVER_REFUSED
    assert errors.Reconfigure("x").kind is Kind.CONFIGURATION
    assert errors.MalformedBody("x").kind is Kind.SERVER


async def test_conditional_get(lab_server: LabServer, server_config: ServerConfig) -> None:
    async with HttpClient(server_config) as http:
        first = await http.fetch("/dcap", DeviceCapability)
        second = await http.fetch("/dcap", DeviceCapability)
        time_read = await http.fetch("/tm", Time)
    assert first.changed and not second.changed and second.value is first.value
    assert time_read.changed
    assert [r.status for r in lab_server.requests] == [200, 304, 200]


async def test_hrefs_resolve_against_the_server_only(server_config: ServerConfig) -> None:
    async with HttpClient(server_config) as http:
        assert str(http.url("/edev?x=1", {"s": 0, "l": 5})).endswith("/edev?x=1&s=0&l=5")
        with pytest.raises(errors.BadResponse, match="points away"):
            http.url("https://elsewhere.example/dcap")


async def test_post_and_put(lab_server: LabServer, server_config: ServerConfig) -> None:
    lfdi = lab_server.lfdi_of(lab_server.pki.client())
    mup = MirrorUsagePoint(
        mRID="0A" * 16, roleFlags=0x49, serviceCategoryKind=0, status=1, deviceLFDI=lfdi, postRate=300
    )
    now = datetime.now(UTC).replace(microsecond=0)
    status = DERStatus(readingTime=now, stateOfChargeStatus=StateOfChargeStatusType(dateTime=now, value=5000))
    async with HttpClient(server_config) as http:
        location = await http.post("/mup", mup)
        await http.put("/edev/3/der/0/ders", status)
        with pytest.raises(errors.Rejected):
            await http.put("/edev/3/der/0/ders", mup)  # the server refuses the wrong resource
        stored = await http.get(location or "", MirrorUsagePoint)
    assert location == "/mup/0"
    assert stored.postRate == lab_server.tree.post_rate
    assert lab_server.tree.stored["/edev/3/der/0/ders"] == DERStatus(
        href="/edev/3/der/0/ders", readingTime=now, stateOfChargeStatus=status.stateOfChargeStatus
    )
    put = next(r for r in lab_server.requests if r.method == "PUT")
    assert put.body.startswith(b"<DERStatus")
