"""The lab server itself: identity by certificate, paging, writes, scripting, faults, down/up."""

from __future__ import annotations

import ssl
from datetime import timedelta

import aiohttp
import pytest

from app.client import errors
from app.client.http import HttpClient
from app.config import ServerConfig
from app.sep.dcap import DeviceCapability
from app.sep.der import DERControl, DERControlList, DERSettings
from app.sep.edev import EndDeviceList, Registration
from app.sep.event import CurrentStatus
from app.sep.metering_mirror import MirrorMeterReading, MirrorUsagePoint, Reading, ReadingType
from app.sep.response import DERControlResponse
from app.sep.types import ActivePower, DateTimeInterval
from wattsmart_lab.pki import Pki
from wattsmart_lab.server import LabServer


async def test_identifies_each_client_by_its_certificate(lab_server: LabServer) -> None:
    for name in ("client", "other"):
        async with HttpClient(lab_server.client_config(name)) as http:
            await http.get("/dcap", DeviceCapability)
    assert [r.lfdi for r in lab_server.requests] == [
        lab_server.lfdi_of(lab_server.pki.client("client")),
        lab_server.lfdi_of(lab_server.pki.client("other")),
    ]


async def test_paging_and_the_l_default(lab_server: LabServer, server_config: ServerConfig) -> None:
    async with HttpClient(server_config) as http:
        bare = await http.get("/edev", EndDeviceList)
        full = await http.get("/edev", EndDeviceList, {"s": 0, "l": 50})
        tail = await http.get("/edev", EndDeviceList, {"s": 3, "l": 50})
    assert (bare.results, bare.all) == (1, 4)
    assert full.results == 4 and tail.results == 1
    assert tail.EndDevice[0].lFDI == lab_server.lfdi_of(lab_server.pki.client())
    assert lab_server.tree.devices[-1].lfdi == tail.EndDevice[0].lFDI


async def test_registration_carries_the_pin(lab_server: LabServer, server_config: ServerConfig) -> None:
    async with HttpClient(server_config) as http:
        reg = await http.get("/edev/3/reg", Registration)
    assert reg.pIN == 111115


async def test_put_der_resources_are_stored(lab_server: LabServer, server_config: ServerConfig) -> None:
    now = lab_server.tree.now().replace(microsecond=0)
    settings = DERSettings(setGradW=0, setMaxW=ActivePower.from_watts(5000), updatedTime=now)
    async with HttpClient(server_config) as http:
        with pytest.raises(errors.Rediscover):
            await http.get("/edev/3/der/0/derg", DERSettings)  # nothing PUT yet
        await http.put("/edev/3/der/0/derg", settings)
        back = await http.get("/edev/3/der/0/derg", DERSettings)
    assert back.setMaxW.watts == 5000 and back.href == "/edev/3/der/0/derg"


async def test_mirror_usage_points_and_readings(lab_server: LabServer, server_config: ServerConfig) -> None:
    lfdi = lab_server.lfdi_of(lab_server.pki.client())
    power = MirrorMeterReading(mRID="01" * 16, ReadingType=ReadingType(uom=38, kind=37))
    mup = MirrorUsagePoint(
        mRID="02" * 16,
        roleFlags=0x49,
        serviceCategoryKind=0,
        status=1,
        deviceLFDI=lfdi,
        MirrorMeterReading=(power,),
        postRate=300,
    )
    now = lab_server.tree.now().replace(microsecond=0)
    reading = MirrorMeterReading(
        mRID="01" * 16, Reading=Reading(value=1234, timePeriod=DateTimeInterval(start=now, duration=30))
    )
    lab_server.tree.post_rate = 60
    async with HttpClient(server_config) as http:
        first = await http.post("/mup", mup)
        again = await http.post("/mup", mup)
        assert first == again == "/mup/0"
        await http.post("/mup/0", reading)
        with pytest.raises(errors.Rediscover):
            await http.post("/mup/9", reading)
        stored = await http.get("/mup/0", MirrorUsagePoint)
    assert stored.postRate == 60  # the server may overwrite the proposed postRate
    assert lab_server.tree.readings == [(0, reading)]
    assert lab_server.tree.mup_owner[0] == lfdi


async def test_control_lifecycle_and_responses(lab_server: LabServer, server_config: ServerConfig) -> None:
    tree = lab_server.tree
    now = tree.now()
    running = tree.add_control(1, start=now - timedelta(seconds=10), duration=600, fixed_w=5000)
    later = tree.add_control(1, start=now + timedelta(hours=1), duration=600, target_w=-2500)
    lfdi = lab_server.lfdi_of(lab_server.pki.client())
    async with HttpClient(server_config) as http:
        active = await http.get("/derp/1/actderc", DERControlList, {"l": 10})
        assert [c.mRID for c in active.DERControl] == [running.mRID]
        tree.cancel_control(running.mRID)
        tree.supersede_control(later.mRID)
        cancelled = await http.get(f"/derp/1/derc/{running.mRID}", DERControl)
        superseded = await http.get(f"/derp/1/derc/{later.mRID}", DERControl)
        assert (await http.get("/derp/1/actderc", DERControlList, {"l": 10})).DERControl == ()
        response = DERControlResponse(
            createdDateTime=now.replace(microsecond=0), endDeviceLFDI=lfdi, status=6, subject=running.mRID
        )
        location = await http.post(cancelled.replyTo or "", response)
    assert cancelled.EventStatus.currentStatus == CurrentStatus.CANCELLED
    assert superseded.EventStatus.currentStatus == CurrentStatus.SUPERSEDED
    assert later.DERControlBase.opModTargetW is not None and later.DERControlBase.opModTargetW.watts == -2500
    assert location == "/rsps/0/rsp/0"
    assert tree.responses == [response]


async def test_rename_and_remove(lab_server: LabServer, server_config: ServerConfig) -> None:
    lab_server.tree.rename("/derp/1", "/programs/contracted")
    lab_server.tree.remove("/derp/0/derc")
    async with HttpClient(server_config) as http:
        with pytest.raises(errors.Rediscover):
            await http.get("/derp/1/derc", DERControlList)
        moved = await http.get("/programs/contracted/derc", DERControlList)
        with pytest.raises(errors.Rediscover):
            await http.get("/derp/0/derc", DERControlList)
    assert moved.href == "/programs/contracted/derc"
    lab_server.tree.restore("/derp/0/derc")
    assert lab_server.tree.canonical("/derp/0/derc") == "/derp/0/derc"


async def test_refuses_other_content_types_on_writes(lab_server: LabServer, pki: Pki) -> None:
    cfg = lab_server.client_config()
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    async with (
        aiohttp.ClientSession() as session,
        session.put(f"{lab_server.base_url}/edev/3/der/0/ders", data=b"{}", ssl=ctx) as resp,
    ):
        assert resp.status == 415


async def test_faults_are_consumed_in_order(lab_server: LabServer, server_config: ServerConfig) -> None:
    lab_server.fail(2, 503, retry_after="5", path="/tm")
    async with HttpClient(server_config) as http:
        await http.get("/dcap", DeviceCapability)  # not matched
        for _ in range(2):
            with pytest.raises(errors.ServerBusy):
                await http.get("/tm", DeviceCapability)
    assert lab_server.faults == []
    assert [r.status for r in lab_server.requests] == [200, 503, 503]


async def test_down_and_up_keep_the_port(lab_server: LabServer, server_config: ServerConfig) -> None:
    port = lab_server.port
    async with HttpClient(server_config) as http:
        await http.get("/dcap", DeviceCapability)
        await lab_server.down()
        with pytest.raises(errors.ConnectionFailed):
            await http.get("/dcap", DeviceCapability)
        await lab_server.up()
        await http.get("/dcap", DeviceCapability)
    assert lab_server.port == port
