"""`make os-bundle` end to end on a small root file system: image/os-keys.sh, image/os-bundle.sh, rauc.

The real tools (openssl, mke2fs, resize2fs, mksquashfs, rauc 1.8) on a 16 MiB ext4 image: the
bundle verifies against the CA certificate alone (the image's keyring), and is refused when its
signature is damaged, when it chains to another CA, or (its payload) when one byte of it changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "image" / "os-keys.sh"
BUNDLE = REPO / "image" / "os-bundle.sh"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("rauc", "mksquashfs", "mke2fs", "resize2fs", "openssl")),
    reason="needs rauc, squashfs-tools, e2fsprogs and openssl (apt-get install rauc squashfs-tools)",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("os-bundle")
    tree = tmp / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "wattsmart-image").write_text("IMAGE_VERSION=9.9.9\n")
    (tree / "etc" / "blob").write_bytes(os.urandom(200_000))  # squashfs needs more than one block
    rootfs = tmp / "rootfs.ext4"
    subprocess.run(
        ["mke2fs", "-q", "-t", "ext4", "-L", "root_a", "-d", str(tree), str(rootfs), "32M"], check=True
    )
    keys = tmp / "keys"
    subprocess.run([str(KEYS), str(keys)], check=True, capture_output=True)
    out = tmp / "out"
    out.mkdir()
    env = {
        **os.environ,
        "IMAGE_OUT": str(out),
        "OS_KEYRING": str(keys / "ca.cert.pem"),
        "OS_SIGNING_CERT": str(keys / "signing.cert.pem"),
        "OS_SIGNING_KEY": str(keys / "signing.key.pem"),
        "OS_BUNDLE_ROOTFS": str(rootfs),
        "OS_BUNDLE_VERSION": "9.9.9",
        "OS_BUNDLE": str(out / "os.raucb"),
    }
    res = subprocess.run([str(BUNDLE)], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert "verified against" in res.stdout
    return {"bundle": out / "os.raucb", "keys": keys, "tmp": tmp, "rootfs": rootfs}


def info(bundle: Path, keyring: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rauc", "info", "--output-format=json", f"--keyring={keyring}", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_keys_are_a_ca_and_a_certificate_it_issued(built: dict[str, Path]) -> None:
    keys = built["keys"]
    assert sorted(p.name for p in keys.iterdir()) == [
        "ca.cert.pem", "ca.key.pem", "signing.cert.pem", "signing.key.pem"
    ]  # fmt: skip
    assert (keys / "ca.key.pem").stat().st_mode & 0o077 == 0
    ok = subprocess.run(
        ["openssl", "verify", "-CAfile", str(keys / "ca.cert.pem"), str(keys / "signing.cert.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_bundle_verifies_against_the_ca_certificate_alone(built: dict[str, Path]) -> None:
    res = info(built["bundle"], built["keys"] / "ca.cert.pem")
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    assert manifest["version"] == "9.9.9"
    assert manifest["compatible"] == "wattsmart-gateway-rpi-arm64"
    assert [next(iter(i)) for i in manifest["images"]] == ["rootfs"]
    # the file system was shrunk to its content; RAUC grows it to the slot on the box
    assert manifest["images"][0]["rootfs"]["size"] < built["rootfs"].stat().st_size


def test_another_ca_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    subprocess.run([str(KEYS), str(tmp_path / "other")], check=True, capture_output=True)
    res = info(built["bundle"], tmp_path / "other" / "ca.cert.pem")
    assert res.returncode != 0
    assert "signature verification failed" in res.stderr


def test_a_damaged_signature_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.raucb"
    data = bytearray(built["bundle"].read_bytes())
    data[-100] ^= 0xFF  # inside the CMS signature at the end of the bundle
    bad.write_bytes(bytes(data))
    res = info(bad, built["keys"] / "ca.cert.pem")
    assert res.returncode != 0
    assert "signature verification failed" in res.stderr


def test_a_changed_payload_byte_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    """`rauc info` checks the signed manifest, which pins the payload's dm-verity root hash; every
    payload block is checked against it when the bundle is read (`rauc extract`, and `rauc install`
    through dm-verity on the box)."""
    bad = tmp_path / "bad.raucb"
    data = bytearray(built["bundle"].read_bytes())
    data[len(data) // 4] ^= 0x01
    bad.write_bytes(bytes(data))
    keyring = built["keys"] / "ca.cert.pem"
    res = subprocess.run(
        ["rauc", "extract", f"--keyring={keyring}", str(bad), str(tmp_path / "x")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert "corrupted" in res.stderr
    good = subprocess.run(
        ["rauc", "extract", f"--keyring={keyring}", str(built["bundle"]), str(tmp_path / "y")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "y" / "rootfs.ext4").stat().st_size > 0
