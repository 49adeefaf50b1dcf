"""Carrying a box into a freshly written OS slot (app/ota/oscarry.py), on two real folder trees."""

from __future__ import annotations

import os
from pathlib import Path

from app.ota.oscarry import carry, linked_release

MACHINE_ID = "0123456789abcdef0123456789abcdef\n"


def slot(root: Path, release: str, python: str, machine_id: str = "uninitialized\n") -> Path:
    """A root file system with one gateway release venv made by `python` and `current` at it."""
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/machine-id").write_text(machine_id)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").symlink_to(f"python{python}")
    rel = root / "opt/wattsmart-gateway/releases" / release
    (rel / "bin").mkdir(parents=True)
    (rel / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {python}.2\n")
    (rel / "bin/python").symlink_to(f"/usr/bin/python{python}")
    (root / "opt/wattsmart-gateway/current").symlink_to(f"releases/{release}")
    return root


def running_box(tmp_path: Path, release: str = "1.5.0") -> Path:
    old = slot(tmp_path / "old", release, "3.11", MACHINE_ID)
    (old / "etc/ssh/ssh_host_ed25519_key").write_text("host key\n")
    (old / "etc/wattsmart-gateway").mkdir(parents=True)
    (old / "etc/wattsmart-gateway/gateway.yaml").write_text("server: {}\n")
    ota = old / "var/lib/wattsmart-gateway-ota"
    (ota / "downloads").mkdir(parents=True)
    (ota / "state.json").write_text('{"phase": "idle"}\n')
    (ota / "lock").write_text("")
    (ota / "downloads/abc.bundle.part").write_text("half")
    return old


def test_identity_configuration_and_the_newer_release_are_carried(tmp_path: Path) -> None:
    old = running_box(tmp_path)
    new = slot(tmp_path / "new", "1.4.0", "3.11")
    carried = carry(new, old)
    assert carried == [
        "etc/machine-id",
        "etc/ssh/ssh_host_ed25519_key",
        "etc/wattsmart-gateway",
        "var/lib/wattsmart-gateway-ota",
        "opt/wattsmart-gateway/releases/1.5.0",
    ]
    assert (new / "etc/machine-id").read_text() == MACHINE_ID
    assert (new / "etc/wattsmart-gateway/gateway.yaml").read_text() == "server: {}\n"
    assert (new / "var/lib/wattsmart-gateway-ota/state.json").exists()
    assert not (new / "var/lib/wattsmart-gateway-ota/lock").exists()
    assert not (new / "var/lib/wattsmart-gateway-ota/downloads").exists()
    assert linked_release(new) == "1.5.0"
    assert os.readlink(new / "opt/wattsmart-gateway/previous") == "releases/1.4.0"
    assert (new / "opt/wattsmart-gateway/releases/1.5.0/bin/python").is_symlink()


def test_a_release_for_another_python_stays_behind(tmp_path: Path) -> None:
    old = running_box(tmp_path)
    new = slot(tmp_path / "new", "1.4.0", "3.13")
    carried = carry(new, old)
    assert "opt/wattsmart-gateway/releases/1.5.0" not in carried
    assert linked_release(new) == "1.4.0"
    assert not (new / "opt/wattsmart-gateway/releases/1.5.0").exists()
    assert "etc/wattsmart-gateway" in carried  # the configuration still goes


def test_the_bundles_newer_release_is_kept(tmp_path: Path) -> None:
    old = running_box(tmp_path, "1.5.0")
    new = slot(tmp_path / "new", "1.6.0", "3.11")
    carry(new, old)
    assert linked_release(new) == "1.6.0"
    assert not (new / "opt/wattsmart-gateway/releases/1.5.0").exists()


def test_a_box_without_a_machine_id_yet_carries_none(tmp_path: Path) -> None:
    old = running_box(tmp_path)
    (old / "etc/machine-id").write_text("uninitialized\n")
    new = slot(tmp_path / "new", "1.4.0", "3.11")
    assert "etc/machine-id" not in carry(new, old)
    assert (new / "etc/machine-id").read_text() == "uninitialized\n"
