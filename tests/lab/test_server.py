"""The lab server itself: mutual TLS, identity by certificate, paging, writes, scripting."""

from __future__ import annotations

from app.client.http import HttpClient
from app.config import ServerConfig
from app.lab.server import LabServer
from app.sep.dcap import DeviceCapability
from app.sep.edev import EndDeviceList


async def test_serves_dcap_and_records_the_client_lfdi(
    lab_server: LabServer, server_config: ServerConfig
) -> None:
    async with HttpClient(server_config) as http:
        dcap = await http.get(server_config.dcap_url, DeviceCapability)
    assert dcap.EndDeviceListLink is not None
    assert lab_server.requests[-1].lfdi == lab_server.lfdi_of(lab_server.pki.client())


async def test_list_without_l_returns_one_item(lab_server: LabServer, server_config: ServerConfig) -> None:
    async with HttpClient(server_config) as http:
        page = await http.get("/edev", EndDeviceList)
        full = await http.get("/edev", EndDeviceList, {"s": 0, "l": 50})
    assert (page.results, page.all) == (1, 4)
    assert full.results == 4
