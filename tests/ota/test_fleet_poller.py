"""Fleet side over real HTTP on 127.0.0.1: manifest, staged rollout, resumed download, outcome report."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app.ota.errors import IntegrityError
from app.ota.fleet import cohort
from app.ota.fleet_poller import FleetPoller
from app.ota.transfer import NoSpace, download
from tests.faults.tmpfs import small_tmpfs
from tests.ota.conftest import KEY_ID, Box
from tests.ota.fakes import REPO
from tests.ota.test_install import assert_working
from wattsmart_release import cli as release_tool
from wattsmart_release.signing import private_key_pem

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"  # cohort 57
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@dataclass
class FleetHost:
    """A static file host (with Range support) and a report endpoint."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    cut_after: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)

    async def get(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append((name, request.headers.get("Range")))
        if name not in self.files:
            raise web.HTTPNotFound()
        data = self.files[name]
        if name in self.corrupt:
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        start = int(request.headers.get("Range", "bytes=0-")[6:].rstrip("-"))
        headers = {"Content-Length": str(len(data) - start)}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        resp = web.StreamResponse(status=206 if start else 200, headers=headers)
        await resp.prepare(request)
        cut = self.cut_after.pop(name, None)
        if cut is not None:  # a cellular link dropping mid-transfer
            await resp.write(data[start:cut])
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(data[start:])
        await resp.write_eof()
        return resp

    async def report(self, request: web.Request) -> web.Response:
        self.reports.append(await request.json())
        return web.json_response({"ok": True})


@pytest.fixture
async def host() -> AsyncIterator[FleetHost]:
    fleet = FleetHost()
    app = web.Application()
    app.router.add_get("/fleet/{name}", fleet.get)
    app.router.add_post("/report", fleet.report)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fleet.url = f"http://127.0.0.1:{port}"
    yield fleet
    await runner.cleanup()


def publish(box: Box, host: FleetHost, bundle: Path, percent: int = 100, serial: int | None = None) -> None:
    """Sign a manifest with the release tool and put it and the bundle on the host."""
    key_file = box.tmp / "keys" / f"{KEY_ID}.key"
    if not key_file.exists():
        key_file.parent.mkdir(exist_ok=True)
        key_file.write_bytes(private_key_pem(box.key))
    out = box.tmp / "manifest.json"
    argv = ["manifest", "--key", str(key_file), "--bundle", str(bundle), "--url", bundle.name]
    argv += ["--stage", f"{percent}@2026-12-01T00:00:00+00:00", "--out", str(out)]
    argv += ["--serial", str(serial)] if serial is not None else []
    assert release_tool.main(argv) == 0
    host.files["manifest.json"] = out.read_bytes()
    host.files[bundle.name] = bundle.read_bytes()


def poller(box: Box, host: FleetHost, **overrides: Any) -> FleetPoller:
    settings = {"manifest_url": f"{host.url}/fleet/manifest.json", "report_url": f"{host.url}/report"}
    updater = box.updater()
    updater.settings = dataclasses.replace(box.settings, **(settings | overrides))
    return FleetPoller(updater, LFDI, rng=random.Random(1), now=lambda: NOW)


async def test_poll_installs_the_offered_release_and_reports(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.1.0"))

    assert await poller(box, host).poll_once() == "committed"

    assert_working(box, "1.1.0")
    (report,) = host.reports
    assert report["lfdi"] == LFDI and report["cohort"] == 57
    assert (report["version"], report["from_version"], report["result"]) == ("1.1.0", "1.0.0", "committed")
    assert box.updater().state.last is not None and box.updater().state.last.reported  # type: ignore[union-attr]
    assert not list((box.settings.state_dir / "downloads").iterdir())
    # nothing newer: the next poll only reads the manifest
    host.requests.clear()
    assert await poller(box, host).poll_once() == "up-to-date"
    assert host.requests == [("manifest.json", None)]


async def test_a_box_outside_the_open_cohorts_waits(box: Box, host: FleetHost) -> None:
    assert cohort(LFDI) == 57
    publish(box, host, box.bundle("1.1.0"), percent=57)

    assert await poller(box, host).poll_once() == "up-to-date"
    assert [name for name, _ in host.requests] == ["manifest.json"]
    assert_working(box, "1.0.0")


async def test_a_grid_control_event_defers_the_update(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.1.0"))
    box.control.append(True)

    assert await poller(box, host).poll_once() == "deferred"
    assert [name for name, _ in host.requests] == ["manifest.json"]
    assert_working(box, "1.0.0")
    assert await poller(box, host).poll_once() == "committed"


async def test_a_failed_update_is_reported_and_not_retried(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.1.0", "never-ready"))

    assert await poller(box, host).poll_once() == "rolled_back"
    assert host.reports[0]["result"] == "rolled_back" and "READY" in host.reports[0]["reason"]
    assert await poller(box, host).poll_once() == "up-to-date"
    assert_working(box, "1.0.0")


async def test_an_older_manifest_is_a_replay_and_is_ignored(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.0.1"), percent=0, serial=5)
    assert await poller(box, host).poll_once() == "up-to-date"
    publish(box, host, box.bundle("1.1.0"), serial=4)

    assert await poller(box, host).poll_once() == "error"
    assert_working(box, "1.0.0")


async def test_a_truncated_download_resumes_with_a_range_request(tmp_path: Path, host: FleetHost) -> None:
    data = random.Random(3).randbytes(300_000)
    host.files["big.bundle"] = data
    host.cut_after["big.bundle"] = 120_000

    async with aiohttp.ClientSession() as session:
        dest = tmp_path / "big.bundle"
        await download(
            session, f"{host.url}/fleet/big.bundle", dest, len(data), hashlib.sha256(data).hexdigest()
        )

    assert dest.read_bytes() == data
    assert host.requests == [("big.bundle", None), ("big.bundle", "bytes=120000-")]


async def test_a_corrupted_download_is_refused_and_fetched_afresh(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.1.0"))
    name = next(n for n in host.files if n.endswith(".bundle"))
    host.corrupt.add(name)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(IntegrityError):
            entry = json.loads(json.loads(host.files["manifest.json"])["payload"])["releases"][0]
            dest = box.tmp / "dl" / "x.bundle"
            await download(session, f"{host.url}/fleet/{name}", dest, entry["size"], entry["sha256"])
        assert not list((box.tmp / "dl").iterdir())  # no partial file left to resume from

    assert await poller(box, host).poll_once() == "corrupt"
    assert_working(box, "1.0.0")
    host.corrupt.clear()
    assert await poller(box, host).poll_once() == "committed"
    assert_working(box, "1.1.0")


async def test_the_updater_service_loop_installs_then_exits_for_a_restart(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.1.0"))
    updater = box.updater()
    updater.settings = dataclasses.replace(
        box.settings, manifest_url=f"{host.url}/fleet/manifest.json", poll_interval_s=0.01
    )

    await FleetPoller(updater, LFDI, rng=random.Random(2), now=lambda: NOW).run_forever()

    assert_working(box, "1.1.0")


async def test_an_outcome_the_fleet_did_not_take_is_sent_again_next_poll(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.1.0"))

    assert await poller(box, host, report_url=f"{host.url}/nowhere").poll_once() == "committed"
    assert host.reports == []
    assert await poller(box, host).poll_once() == "up-to-date"
    assert [r["version"] for r in host.reports] == ["1.1.0"]
    assert await poller(box, host).poll_once() == "up-to-date"
    assert len(host.reports) == 1


async def test_the_poll_command_runs_once_from_the_command_line(box: Box, host: FleetHost) -> None:
    publish(box, host, box.bundle("1.1.0"), percent=10)
    s = box.settings
    argv = ["-m", "app.ota", "poll", "--once", "--lfdi", LFDI, "--root", str(s.root)]
    argv += ["--state-dir", str(s.state_dir), "--trust-store", str(s.trust_store), "--systemctl", s.systemctl]
    argv += ["--manifest-url", f"{host.url}/fleet/manifest.json"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()

    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "up-to-date"  # cohort 57 is not in the first 10 %
    assert box.updater().state.manifest_serial == 1


async def test_a_full_disk_mid_download_removes_the_partial_file(tmp_path: Path, host: FleetHost) -> None:
    data = random.Random(4).randbytes(600_000)
    host.files["big.bundle"] = data
    digest = hashlib.sha256(data).hexdigest()
    url = f"{host.url}/fleet/big.bundle"
    with small_tmpfs(tmp_path / "disk", 1024) as disk:
        dest = disk / "downloads" / "big.bundle"
        dest.parent.mkdir()
        # not enough room for the bundle and the reserve: refused before a byte is fetched
        async with aiohttp.ClientSession() as session:
            with pytest.raises(NoSpace, match="must stay free"):
                await download(session, url, dest, len(data), digest, reserve=600_000)
            assert host.requests == []
            # the check passes (no reserve asked), but another writer fills the disk meanwhile: ENOSPC
            (disk / "other").write_bytes(b"\0" * 600_000)
            with pytest.raises(NoSpace, match="disk full"):
                await download(session, url, dest, len(data), digest, reserve=-600_000)
            assert list(dest.parent.iterdir()) == []  # no .part keeps the partition full
            (disk / "other").unlink()
            await download(session, url, dest, len(data), digest, reserve=0)
        assert dest.read_bytes() == data


async def test_no_space_for_the_bundle_fails_this_poll_and_the_next_one_installs(
    box: Box, host: FleetHost
) -> None:
    publish(box, host, box.bundle("1.1.0"))
    short = poller(box, host)
    # more than the whole disk: no download can leave that much free (free space moves on a shared machine)
    short.reserve_bytes = shutil.disk_usage(box.tmp).total
    assert await short.poll_once() == "no-space"
    assert not list((box.settings.state_dir / "downloads").iterdir())
    assert_working(box, "1.0.0")
    assert await poller(box, host).poll_once() == "committed"
