"""The fleet's release tool end to end: keygen, trust store, bundle, manifest — then a box installs it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from app.ota.bundle import verify_bundle
from app.ota.fleet import parse_manifest
from app.ota.keys import load_trust_store
from tests.ota.fakes import make_wheel
from wattsmart_release import cli as release


def test_keygen_trust_bundle_and_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    assert release.main(["keygen", "--key-id", "fleet-2026", "--out", str(keys)]) == 0
    assert stat.S_IMODE((keys / "fleet-2026.key").stat().st_mode) == 0o600
    assert "PRIVATE" not in capsys.readouterr().out  # the private key is never printed
    trust_file = tmp_path / "trust.json"
    assert (
        release.main(
            ["trust", "--serial", "1", "--key", str(keys / "fleet-2026.pub"), "--out", str(trust_file)]
        )
        == 0
    )

    wheels = make_wheel(tmp_path / "dist", "1.2.0").parent
    make_wheel(tmp_path / "dist-dep", "0.0.1")  # not bundled: only what is given goes in
    bundle = tmp_path / "gw-1.2.0.bundle"
    argv = ["bundle", "--key", str(keys / "fleet-2026.key"), "--min-version", "1.0.0", "--out", str(bundle)]
    assert release.main([*argv, str(wheels)]) == 0
    manifest = verify_bundle(bundle, load_trust_store(trust_file))
    assert (str(manifest.version), str(manifest.min_version), manifest.key_id) == (
        "1.2.0",
        "1.0.0",
        "fleet-2026",
    )
    assert list(manifest.files) == ["wheels/wattsmart_gateway-1.2.0-py3-none-any.whl"]

    out = tmp_path / "manifest.json"
    argv = ["manifest", "--key", str(keys / "fleet-2026.key"), "--bundle", str(bundle), "--url", bundle.name]
    assert release.main([*argv, "--stage", "10@2026-12-01T00:00:00+00:00", "--out", str(out)]) == 0
    again = [*argv, "--stage", "100@2026-12-03T00:00:00+00:00", "--base", str(out), "--out", str(out)]
    assert release.main(again) == 0
    fleet = parse_manifest(out.read_bytes(), load_trust_store(trust_file), "https://cdn.example/fleet/")
    assert fleet.serial == 2
    (entry,) = fleet.releases
    assert entry.url == "https://cdn.example/fleet/gw-1.2.0.bundle" and entry.size == bundle.stat().st_size
    assert [s.percent for s in entry.stages] == [100]
    assert json.loads(json.loads(out.read_bytes())["payload"])["product"] == "wattsmart-gateway"

    assert release.main(["manifest", *argv[1:], "--stage", "5@tomorrow", "--out", str(out)]) == 1
