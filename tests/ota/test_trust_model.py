"""What a compromised gateway process or a careless release engineer cannot make the updater do.

The attacks of issue 15, each tried for real: the gateway's uid planting root's update state, a
forced downgrade below the security floor, an expired fleet manifest, a bundle whose version is not
its code's, malformed or runaway trust statements, a huge tar header before the signature check,
and a grid-control event that would hold updates back for 136 years.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.config import Config
from app.ota.bundle import verify_bundle
from app.ota.errors import BundleRejected, IntegrityError, VersionRefused
from app.ota.fleet import FleetManifest, ManifestExpired, choose, parse_manifest
from app.ota.keys import MAX_SERIAL_STEP, TrustStore, TrustStoreError, load_trust_store, parse_trust_store
from app.ota.machine import Phase
from app.ota.settings import OtaSettings
from app.ota.state import FLAG_TTL_S, control_in_force, read_gateway_file, set_control_in_force
from app.ota.updater import FLOOR_FILE, Updater
from app.ota.version import Version, is_version
from tests.ota.conftest import KEY_ID, Box
from tests.ota.fakes import make_wheel
from tests.ota.test_fleet_poller import NOW as POLL_NOW
from tests.ota.test_fleet_poller import FleetHost, poller, publish
from tests.ota.test_install import assert_working
from wattsmart_release import cli as release_tool
from wattsmart_release.signing import build_bundle, generate_key, private_key_pem, sign, sign_manifest

NOBODY = 65534
#: the unprivileged side runs the system's Python (the test venv may sit in root's 0700 home)
SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0 or SYSTEM_PYTHON is None, reason="needs root to act as another uid (CI runs as root)"
)


def hand_signed_bundle(
    out: Path, key: Ed25519PrivateKey, manifest: dict[str, Any], members: dict[str, bytes]
) -> Path:
    """A bundle signed with the fleet key but built without the release tool's checks (a careless tool)."""
    manifest = {
        "format": 1,
        "product": "wattsmart-gateway",
        "key_id": KEY_ID,
        "min_version": None,
        "created": "2026-12-01T00:00:00+00:00",
        "files": {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in members.items()},
        **manifest,
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in {
            "manifest.json": body,
            "manifest.sig": sign(key, body).encode(),
            **members,
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


# --- 1. the privilege boundary ----------------------------------------------------------------


def test_root_update_state_lies_outside_everything_the_gateway_owns() -> None:
    gateway = Config.__dataclass_fields__["state_dir"].default
    ota = OtaSettings()
    assert isinstance(gateway, Path)
    for path in (ota.state_dir, ota.root, ota.trust_store):
        assert not path.is_relative_to(gateway), path
    # the one thing the gateway writes that the updater reads: the bounded control-in-force hint
    assert ota.control_flag.is_relative_to(Path("/run/wattsmart-gateway"))


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another uid can reach (pytest's tmp_path is 0700 root's), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="wsg-ota-uid-"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=True)


_PLANT = r"""
import json, os, sys
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "done"
    except OSError as exc:
        results[name] = type(exc).__name__
legacy, ota = sys.argv[1], sys.argv[2]
trial = json.dumps({"phase": "trial", "known_good": "1.0.0", "target": "1.2.0", "trial_boots": 99,
                    "manifest_serial": 1e15})
def swap(folder):
    os.rename(folder, folder + ".x")
    os.mkdir(folder)
    with open(os.path.join(folder, "state.json"), "w") as f:
        f.write(trial)
attempt("legacy swap", lambda: swap(legacy))
attempt("ota swap", lambda: swap(ota))
attempt("ota write", lambda: open(os.path.join(ota, "state.json"), "w").write(trial))
attempt("ota new file", lambda: open(os.path.join(ota, "security-floor.json"), "x").write("{}"))
attempt("ota utime", lambda: os.utime(os.path.join(ota, "state.json")))
def hold_lock():
    import fcntl
    fcntl.flock(os.open(os.path.join(ota, "lock"), os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)
attempt("ota lock", hold_lock)
print(json.dumps(results))
"""


@ROOT_ONLY
def test_the_gateway_uid_cannot_plant_root_update_state(box: Box, shared_tmp: Path) -> None:
    # the box's layout: the gateway's own 0750 folder, root's update state beside it (not inside)
    var_lib = shared_tmp / "var" / "lib"
    gateway_dir, ota_dir = var_lib / "wattsmart-gateway", var_lib / "wattsmart-gateway-ota"
    var_lib.mkdir(parents=True)
    for folder in (shared_tmp / "var", var_lib):
        folder.chmod(0o755)
    gateway_dir.mkdir(mode=0o750)
    os.chown(gateway_dir, NOBODY, NOBODY)
    legacy = gateway_dir / "ota"  # where releases before this one kept root's state
    legacy.mkdir(mode=0o755)
    box.settings = dataclasses.replace(box.settings, state_dir=ota_dir)
    box.updater().install(box.bundle("1.2.0"))
    assert box.releases.linked(box.releases.previous) == "1.0.0"
    (legacy / "state.json").write_bytes((ota_dir / "state.json").read_bytes())
    state_before = (ota_dir / "state.json").read_bytes()

    done = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", _PLANT, str(legacy), str(ota_dir)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    results = json.loads(done.stdout)

    assert results["legacy swap"] == "done"  # the hole: the gateway owns the folder around the old place
    assert {k: v for k, v in results.items() if k != "legacy swap"} == {
        "ota swap": "PermissionError",
        "ota write": "PermissionError",
        "ota new file": "PermissionError",
        "ota utime": "PermissionError",
        "ota lock": "PermissionError",  # flock needs only read access: a held lock would stop every update
    }
    assert (ota_dir / "state.json").read_bytes() == state_before
    # root's boot recovery reads only its own folder: 1.2.0 stays, nothing is deleted
    state = box.updater().recover()
    assert (state.phase, state.known_good, state.manifest_serial) == (Phase.IDLE, "1.2.0", 0)
    assert_working(box, "1.2.0")
    assert box.releases.complete("1.0.0")


def test_install_sh_and_tmpfiles_make_the_state_folder_root_s_and_drop_the_old_one() -> None:
    repo = Path(__file__).resolve().parents[2]
    tmpfiles = (repo / "deploy" / "tmpfiles.d" / "wattsmart-gateway.conf").read_text()
    assert "/var/lib/wattsmart-gateway/ota" not in tmpfiles
    assert f"d {OtaSettings().state_dir} " in " ".join(tmpfiles.split()) + " "
    script = (repo / "deploy" / "install.sh").read_text()
    assert 'rm -rf "$ota_legacy"' in script


def test_gateway_files_root_reads_cannot_hang_or_swell_it(tmp_path: Path) -> None:
    flag = tmp_path / "control-in-force"
    os.mkfifo(flag)
    assert control_in_force(flag) is True  # no writer: a blocking open would hang here forever
    flag.unlink()
    flag.symlink_to("/dev/zero")
    assert control_in_force(flag) is True  # not followed, not read
    # the same reader takes the LFDI from the gateway's certificate: a FIFO, a device, a huge file
    cert = tmp_path / "cert.pem"
    os.mkfifo(cert)
    for target in (cert, Path("/dev/zero")):
        with pytest.raises(ValueError, match="not a regular file"):
            read_gateway_file(target, 1 << 16)
    cert.unlink()
    with cert.open("wb") as f:
        f.truncate(1 << 30)
    with pytest.raises(ValueError, match="at most 65536 bytes"):
        read_gateway_file(cert, 1 << 16)


# --- 2. anti-rollback ---------------------------------------------------------------------------


def test_force_cannot_go_below_the_security_floor(box: Box) -> None:
    box.updater().install(box.bundle("1.2.0", security_floor="1.1.0"))
    assert (box.settings.state_dir / FLOOR_FILE).exists()
    assert box.updater().security_floor() == Version("1.1.0")

    for version in ("1.0.0", "1.0.9"):
        with pytest.raises(VersionRefused, match=r"below this box's security floor 1\.1\.0"):
            box.updater().install(box.bundle(version), force=True)
    assert_working(box, "1.2.0")
    state = box.updater().install(box.bundle("1.1.0"), force=True)  # at the floor: --force still works
    assert state.last is not None and state.last.result == "committed"
    assert_working(box, "1.1.0")
    assert box.updater().security_floor() == Version("1.1.0")  # the floor never goes down


def test_the_floor_survives_a_power_cut_between_commit_and_its_record(box: Box) -> None:
    box.updater().install(box.bundle("1.2.0", security_floor="1.2.0"))
    (box.settings.state_dir / FLOOR_FILE).unlink()  # the cut came before the floor was written
    assert box.updater().security_floor() == Version("1.2.0")  # the committed release's marker holds it
    box.updater().recover()
    assert json.loads((box.settings.state_dir / FLOOR_FILE).read_bytes()) == {"floor": "1.2.0"}


def test_a_floor_is_raised_only_by_a_committed_bundle(box: Box) -> None:
    from tests.ota.fakes import CRASH

    box.updater().install(box.bundle("1.1.0", CRASH, security_floor="1.1.0"))
    assert box.updater().state.last is not None and box.updater().state.last.result == "rolled_back"  # type: ignore[union-attr]
    assert box.updater().security_floor() is None
    with pytest.raises(ValueError, match="above the release's own version"):
        box.bundle("1.3.0", security_floor="1.4.0")


def test_the_fleet_poller_skips_releases_below_the_floor() -> None:
    from tests.ota.test_fleet import NOW, release

    manifest = FleetManifest(1, "", (release("1.1.0", (100, -1)), release("1.0.5", (100, -1))))
    assert choose(manifest, "1.0.0", 0, NOW, floor=Version("1.1.0")) == manifest.releases[0]
    assert choose(manifest, "1.0.0", 0, NOW, floor=Version("1.2.0")) is None


def _payload(not_after: datetime) -> dict[str, Any]:
    return {
        "format": 1,
        "product": "wattsmart-gateway",
        "serial": 4,
        "releases": [],
        "not_after": not_after.isoformat(),
    }


def test_an_expired_manifest_is_refused() -> None:
    key = generate_key()
    trust = TrustStore(1, {"k1": key.public_key()})
    now = datetime(2026, 12, 5, tzinfo=UTC)
    signed = sign_manifest(_payload(now + timedelta(days=1)), key, "k1")
    assert parse_manifest(signed, trust, "https://cdn.example/", now).serial == 4
    with pytest.raises(ManifestExpired, match="expired at 2026-12-06"):
        parse_manifest(signed, trust, "https://cdn.example/", now + timedelta(days=1, seconds=1))
    without = _payload(now)
    del without["not_after"]
    with pytest.raises(Exception, match="not_after"):
        parse_manifest(sign_manifest(without, key, "k1"), trust, "https://cdn.example/", now)


@pytest.fixture
async def fleet_host() -> AsyncIterator[FleetHost]:
    """test_fleet_poller's static host and report endpoint, on an ephemeral port of 127.0.0.1."""
    from aiohttp import web

    host = FleetHost()
    app = web.Application()
    app.router.add_get("/fleet/{name}", host.get)
    app.router.add_post("/report", host.report)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield host
    await runner.cleanup()


async def test_the_poller_refuses_and_reports_an_expired_manifest(box: Box, fleet_host: FleetHost) -> None:
    publish(box, fleet_host, box.bundle("1.1.0"))
    late = poller(box, fleet_host)
    late._now = lambda: POLL_NOW + timedelta(days=400)  # the manifest was signed for 30 days
    assert await late.poll_once() == "expired"
    (report,) = fleet_host.reports
    assert report["result"] == "manifest_refused" and "expired" in report["reason"]
    assert_working(box, "1.0.0")


async def test_the_poller_defers_for_an_endless_event_at_most_the_maximum(
    box: Box, fleet_host: FleetHost
) -> None:
    box.control.extend([True] * 10_000)  # the gateway says an event is in force, and never stops saying it
    publish(box, fleet_host, box.bundle("1.1.0"))
    fleet = poller(box, fleet_host, max_control_wait_s=3600.0)
    start = box.clock.now
    results = []
    while (result := await fleet.poll_once()) == "deferred":
        results.append(result)
        box.clock.sleep(box.settings.control_retry_s)  # run_forever polls again after control_retry_s
    assert result == "committed"
    assert (
        3600.0
        <= box.clock.now - start - box.settings.healthy_for_s
        <= 3600.0 + 2 * box.settings.control_retry_s
    )
    assert len(results) == 3600 // 30
    assert_working(box, "1.1.0")


# --- 3. the version is the code's ----------------------------------------------------------------


def test_versions_are_canonical_pep440() -> None:
    assert Version("1.1.0.0") > Version("1.0.5") and Version("2.0.0rc1") < Version("2.0.0")
    for bad in ("1.0-rc1", "v1.0", "1.0+local", "01.0", "1.0.0 ", "../1.0", ""):
        assert not is_version(bad), bad


def test_a_wheel_of_another_version_is_refused_at_signing(box: Box) -> None:
    wheel = make_wheel(box.tmp / "w", "0.1.0")
    with pytest.raises(ValueError, match=r"is version 0\.1\.0, not 2\.0\.0"):
        build_bundle(
            box.tmp / "x.bundle", [wheel], version="2.0.0", min_version=None, key=box.key, key_id=KEY_ID
        )
    with pytest.raises(ValueError, match=r"wattsmart-gateway==2\.0\.0"):
        build_bundle(
            box.tmp / "x.bundle",
            [make_wheel(box.tmp / "w2", "2.0.0")],
            version="2.0.0",
            min_version=None,
            key=box.key,
            key_id=KEY_ID,
            requirement="wattsmart-gateway==0.1.0",
        )
    # the code's own idea of its version (what `wattsmart-gateway --version` prints) must agree too
    stale = make_wheel(box.tmp / "w3", "2.0.0")
    with zipfile.ZipFile(stale, "a") as z:
        z.writestr("app/__init__.py", '"""The gateway."""\n\n__version__ = "1.9.0"\n')
    with pytest.raises(ValueError, match=r"__version__ = '1\.9\.0', not '2\.0\.0'"):
        build_bundle(
            box.tmp / "z.bundle", [stale], version="2.0.0", min_version=None, key=box.key, key_id=KEY_ID
        )
    key_file = box.tmp / f"{KEY_ID}.key"
    key_file.write_bytes(private_key_pem(box.key))
    argv = [
        "bundle",
        "--key",
        str(key_file),
        "--version",
        "2.0.0",
        "--out",
        str(box.tmp / "y.bundle"),
        str(wheel),
    ]
    assert release_tool.main(argv) == 1
    assert not (box.tmp / "y.bundle").exists()


def test_a_wheel_of_another_version_is_refused_at_install(box: Box) -> None:
    wheel = make_wheel(box.tmp / "w", "0.1.0")
    name = f"wheels/{wheel.name}"
    bundle = hand_signed_bundle(
        box.tmp / "lie.bundle",
        box.key,
        {"version": "2.0.0", "requirement": "wattsmart-gateway==2.0.0"},
        {name: wheel.read_bytes()},
    )
    with pytest.raises(BundleRejected, match=r"says 2\.0\.0 but the gateway wheel is 0\.1\.0"):
        box.updater().install(bundle)
    assert not (box.settings.root / "releases" / "2.0.0").exists()
    assert box.updater().state.failed == ("2.0.0",)
    assert_working(box, "1.0.0")
    # a requirement that would install another version is refused before anything is unpacked
    sneaky = hand_signed_bundle(
        box.tmp / "req.bundle",
        box.key,
        {"version": "2.0.0", "requirement": "wattsmart-gateway==0.1.0"},
        {name: wheel.read_bytes()},
    )
    with pytest.raises(BundleRejected, match=r"is not wattsmart-gateway==2\.0\.0"):
        box.updater().verify(sneaky)


# --- 4. trust statements -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ({"serial": True, "keys": "K"}, "serial"),
        ({"serial": 2**63, "keys": "K"}, "serial"),
        ({"serial": 2, "keys": {}}, "trusts no key"),
        ({"serial": 2, "keys": "K", "revoked": ["new"]}, "trusts no key"),
        ({"serial": 2, "keys": {"new": "not base64!"}}, "malformed"),
        ({"serial": 2, "keys": "K", "revoked": "old"}, "revoked"),
        ([1, 2], "expected"),
    ],
)
def test_malformed_trust_statements_are_refused_at_signing(box: Box, statement: Any, why: str) -> None:
    from app.ota.keys import public_key_b64

    good_key = public_key_b64(generate_key().public_key())
    if isinstance(statement, dict) and statement.get("keys") == "K":
        statement = {**statement, "keys": {"new": good_key}}
    bad = box.tmp / "bad.json"
    bad.write_text(json.dumps(statement))
    with pytest.raises(TrustStoreError, match=why):
        parse_trust_store(bad.read_bytes())
    with pytest.raises(ValueError, match=why):
        box.bundle("1.1.0", trust=bad)


def _statement(box: Box, serial: int) -> dict[str, Any]:
    from app.ota.keys import public_key_b64

    return {"serial": serial, "keys": {"fleet-2027": public_key_b64(generate_key().public_key())}}


def test_a_bad_statement_in_a_bundle_is_refused_before_the_switch(box: Box) -> None:
    wheel = make_wheel(box.tmp / "w", "1.1.0")
    members = {f"wheels/{wheel.name}": wheel.read_bytes()}
    fields = {"version": "1.1.0", "requirement": "wattsmart-gateway==1.1.0"}
    for statement, why in (
        (b'{"serial": true, "keys": {}}', "malformed"),
        (json.dumps(_statement(box, 1 + MAX_SERIAL_STEP + 1)).encode(), "jumps more than"),
    ):
        bundle = hand_signed_bundle(
            box.tmp / "b.bundle", box.key, fields, {**members, "trust.json": statement}
        )
        with pytest.raises(BundleRejected, match=why):
            box.updater().install(bundle)
        assert box.systemd.load()["starts"] == ["1.0.0"]  # never switched, never restarted
        assert_working(box, "1.0.0")
        assert load_trust_store(box.settings.trust_store).serial == 1


def test_a_broken_statement_at_boot_leaves_the_keys_in_force_and_logs_one_error(
    box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    box.updater().install(box.bundle("1.1.0"))
    # what the old updater let through: a committed release carrying a statement that does not load
    (box.settings.root / "releases" / "1.1.0" / "ota-trust.json").write_text('{"serial": true}')
    before = box.settings.trust_store.read_bytes()
    for _ in range(3):  # every boot: no exception, no crash loop
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            state = box.updater().recover()
        assert state.phase is Phase.IDLE
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "current keys stay in force" in errors[0].getMessage()
    assert box.settings.trust_store.read_bytes() == before
    assert box.updater().verify(box.bundle("1.2.0")).key_id == KEY_ID


def test_a_signed_rotation_within_the_step_is_adopted(box: Box) -> None:
    statement = box.tmp / "rotation.json"
    statement.write_text(json.dumps(_statement(box, 1 + MAX_SERIAL_STEP)))
    box.updater().install(box.bundle("1.1.0", trust=statement))
    assert load_trust_store(box.settings.trust_store).serial == 1 + MAX_SERIAL_STEP


# --- 5. bounded parsing --------------------------------------------------------------------------


def _huge_pax_bundle(path: Path, size: int) -> Path:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, size
    with path.open("wb") as f:
        f.write(header.tobuf(tarfile.USTAR_FORMAT))
        f.truncate(512 + size + 1024)  # sparse: the disk holds almost nothing
    return path


_MEASURE = r"""
import resource, sys, time
from pathlib import Path
from app.ota.bundle import verify_bundle
from app.ota.errors import IntegrityError
from app.ota.keys import TrustStore
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    verify_bundle(Path(sys.argv[1]), TrustStore())
except IntegrityError as exc:
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(grew, time.monotonic() - start, exc, sep="\n")
"""


def test_a_300_mib_extended_header_is_refused_without_reading_it(tmp_path: Path) -> None:
    bundle = _huge_pax_bundle(tmp_path / "huge.bundle", 300 * 2**20)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(bundle)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    grew_kib, seconds, message = done.stdout.splitlines()
    assert "extended header" in message
    assert int(grew_kib) < 4 * 1024, f"peak RSS grew by {int(grew_kib) // 1024} MiB"  # it was 300 MiB
    assert float(seconds) < 1.0


def _tar(path: Path, *infos: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in infos:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def test_only_plain_small_members_get_past_the_header_walk(box: Box, tmp_path: Path) -> None:
    def member(name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        return info

    trust = TrustStore(1, {KEY_ID: box.key.public_key()})
    cases = {
        "long name": _tar(tmp_path / "a", (member("x" * 200), b"data")),  # a GNU long-name header
        "symlink": _tar(tmp_path / "b", (member("manifest.json", tarfile.SYMTYPE), b"")),
        "big manifest": _tar(tmp_path / "c", (member("manifest.json"), b" " * (2**20 + 1))),
        "duplicate": _tar(tmp_path / "d", (member("manifest.json"), b"{}"), (member("manifest.json"), b"{}")),
    }
    expected = {
        "long name": "type b'L'",
        "symlink": "type b'2'",
        "big manifest": "limit",
        "duplicate": "twice",
    }
    for case, path in cases.items():
        with pytest.raises(IntegrityError, match=expected[case]):
            verify_bundle(path, trust)
    good = box.bundle("1.1.0")
    assert verify_bundle(good, trust).version == Version("1.1.0")


# --- 6. bounded deferral -------------------------------------------------------------------------


def test_a_136_year_event_delays_an_update_by_at_most_the_maximum(
    box: Box, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(box.settings, max_control_wait_s=6 * 3600.0)
    flag = tmp_path / "run" / "control-in-force"
    set_control_in_force(flag, until=box.clock.now + 4294967295)  # what the gateway wrote for the event

    def gateway_refreshes(seconds: float) -> None:  # a live (or compromised) gateway keeps it fresh
        box.clock.sleep(seconds)
        os.utime(flag, (box.clock.now, box.clock.now))

    os.utime(flag, (box.clock.now, box.clock.now))
    updater = Updater(
        settings,
        box.runner,
        control_in_force=lambda: control_in_force(flag, now=box.clock.now),
        monotonic=box.clock.time,
        wall_clock=box.clock.time,
        sleep=gateway_refreshes,
    )
    start = box.clock.now
    with caplog.at_level(logging.WARNING):
        state = updater.install(box.bundle("1.1.0"))
    waited = sum(box.clock.slept[: box.clock.slept.index(settings.probe_interval_s)])
    assert settings.max_control_wait_s <= waited <= settings.max_control_wait_s + settings.control_retry_s
    assert box.clock.now - start < settings.max_control_wait_s + 2 * settings.healthy_for_s
    assert state.last is not None and state.last.result == "committed"
    assert any("updating now" in r.getMessage() for r in caplog.records)


def test_a_crashed_gateway_s_flag_delays_an_update_by_minutes(box: Box, tmp_path: Path) -> None:
    flag = tmp_path / "run" / "control-in-force"
    set_control_in_force(flag, until=box.clock.now + 4294967295)
    os.utime(flag, (box.clock.now, box.clock.now))  # and then nobody refreshes it
    updater = Updater(
        box.settings,
        box.runner,
        control_in_force=lambda: control_in_force(flag, now=box.clock.now),
        monotonic=box.clock.time,
        wall_clock=box.clock.time,
        sleep=box.clock.sleep,
    )
    start = box.clock.now
    updater.install(box.bundle("1.1.0"), watch=False)
    assert box.clock.now - start <= FLAG_TTL_S + box.settings.control_retry_s
    assert box.releases.linked() == "1.1.0"


def test_boxes_from_before_the_move_keep_updating(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from app.ota.cli import legacy_state_dir
    from app.ota.settings import LEGACY_STATE_DIR, STATE_DIR

    # configs copied from the old example name the old folder: it means root's new one
    assert OtaSettings(state_dir=LEGACY_STATE_DIR).state_dir == STATE_DIR
    if STATE_DIR.exists():
        pytest.skip(f"{STATE_DIR} exists on this machine")
    # units from before the move let the updater write only the old folder: use it, and say so
    legacy = tmp_path / "legacy"
    assert legacy_state_dir(OtaSettings(), legacy).state_dir == STATE_DIR  # no old folder either
    legacy.mkdir()
    with caplog.at_level(logging.ERROR):
        assert legacy_state_dir(OtaSettings(), legacy).state_dir == legacy
    assert "run deploy/install.sh again" in caplog.text
    assert legacy_state_dir(OtaSettings(state_dir=tmp_path / "own"), legacy).state_dir == tmp_path / "own"


def test_the_updater_takes_the_lfdi_from_the_certificate_as_the_gateway_does(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from app.ota.cli import _lfdi_from_config
    from app.sep.identity import load_cert_identity
    from tests.identity.conftest import Ca, pem, write_config

    ca = Ca.root("test root")
    cert = tmp_path / "device.pem"
    cert.write_bytes(pem(ca.issue(ec.generate_private_key(ec.SECP256R1()).public_key())))
    (tmp_path / "ca.pem").write_bytes(pem(ca.cert))
    config = write_config(tmp_path, tmp_path / "state", tmp_path / "ca.pem", cert)
    assert _lfdi_from_config(config) == load_cert_identity(cert).lfdi
    cert.unlink()
    os.mkfifo(cert)  # a compromised gateway's trap: no LFDI this time, and no hang
    assert _lfdi_from_config(config) is None


def test_this_checkout_s_version_is_one_version() -> None:
    import tomllib

    import app

    repo = Path(__file__).resolve().parents[2]
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    # the wheel's metadata and `wattsmart-gateway --version` must agree, or every box refuses the bundle
    assert project["version"] == app.__version__
    assert is_version(app.__version__)
