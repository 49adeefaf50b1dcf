"""A DERCapability/DERSettings the server refuses: its 2030.5 Error told in the log and on the status
page, sent again after a wait a few times, and at once when the ratings change it (real lab server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.client.errors import Rejected
from app.client.http import HttpClient, describe_error
from app.config import ServerConfig
from app.health import Health, Kind
from app.sep.dcap import DeviceCapability
from app.sep.error import Error
from app.telemetry.links import TelemetryLinks
from app.telemetry.reports import PART, REFUSED_RETRY_S, NameplateReporter
from hal.inverter import Ratings
from wattsmart_lab.server import LabServer

RATINGS = Ratings(max_w=5000, max_charge_w=4600, max_discharge_w=5000, energy_capacity_wh=13500)
CAP = "/edev/3/der/0/dercap"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REFUSAL = Error(reasonCode=1, maxRetryDuration=30, message="doeModesSupported\nis required")


class Link:
    """The session's write side, over a real HttpClient."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self.tree = None

    async def post(self, href: str, obj: object) -> str | None:
        return await self.http.post(href, obj)

    async def put(self, href: str, obj: object) -> None:
        await self.http.put(href, obj)


def test_the_error_is_described_whole_and_bounded() -> None:
    text = describe_error(REFUSAL)
    assert text == (
        "2030.5 Error reasonCode 1 invalid request values, maxRetryDuration 30 s: "
        "'doeModesSupported is required'"
    )
    long = describe_error(Error(reasonCode=9, message="x" * 5000))
    assert long.startswith("2030.5 Error reasonCode 9: 'xxx") and len(long) < 300


async def test_a_rejected_request_carries_the_servers_error(
    lab_server: LabServer, server_config: ServerConfig
) -> None:
    lab_server.fail(1, 400, error=REFUSAL)
    async with HttpClient(server_config) as http:
        with pytest.raises(Rejected) as caught:
            await http.get("/dcap", DeviceCapability)
    assert caught.value.reason_code == 1
    assert "maxRetryDuration 30 s: 'doeModesSupported is required'" in str(caught.value)


async def test_a_refused_capability_is_told_retried_spaced_out_then_on_a_change(
    lab_server: LabServer, server_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    health = Health(monotonic=lambda: 0.0)
    links = TelemetryLinks(None, der_capability=CAP)
    async with HttpClient(server_config) as http:
        reporter = NameplateReporter(Link(http), links, None, 0, health)
        reporter.update(RATINGS, T0)
        lab_server.fail(10, 400, path=CAP, error=REFUSAL)
        now = T0
        await reporter.send(now)
        assert lab_server.count("PUT", CAP) == 1
        assert "doeModesSupported is required" in health.problems()[PART]
        assert health.kind(PART) is Kind.SERVER_REFUSED
        assert any("Server refused DERCapability" in r.getMessage() for r in caplog.records)
        await reporter.send(now + timedelta(seconds=REFUSED_RETRY_S[0] - 1))
        assert lab_server.count("PUT", CAP) == 1  # not at every cycle
        for wait in REFUSED_RETRY_S:
            now += timedelta(seconds=wait)
            await reporter.send(now)
        assert lab_server.count("PUT", CAP) == 1 + len(REFUSED_RETRY_S)
        await reporter.send(now + timedelta(days=30))
        assert lab_server.count("PUT", CAP) == 1 + len(REFUSED_RETRY_S)  # not forever
        lab_server.clear_faults()
        reporter.update(
            Ratings(max_w=4000, max_charge_w=4000, max_discharge_w=4000, energy_capacity_wh=13500), now
        )
        await reporter.send(now)  # a rating change: at once
        assert lab_server.count("PUT", CAP) == 2 + len(REFUSED_RETRY_S)
    assert PART not in health.problems()
    assert lab_server.tree.stored[CAP] is not None
