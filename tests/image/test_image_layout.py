"""`make image`'s inputs, checked without building: layout, pinned inputs, hardening, test harness.

The image itself is built and booted only by `make image` / `make image-test` (minutes under
qemu); these checks keep the cheap promises from rotting in between.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType

from app.config import load_config

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "image"


def config_env() -> dict[str, str]:
    script = f'set -a; . "{IMAGE / "config.env"}"; env -0'
    out = subprocess.run(["bash", "-c", script], capture_output=True, env={}, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def genimage_cfg() -> str:
    """genimage.cfg.in filled in the way image/build.sh does it."""
    text = (IMAGE / "genimage.cfg.in").read_text()
    env = config_env()
    values = {**env, "NAME": "wattsmart-gateway-0.0.0-bookworm-arm64", "DATA_OWNER": "999:999", "EPOCH": "1"}
    filled = re.sub(r"@([A-Z_]+)@", lambda m: values[m[1]], text)
    assert "@" not in filled.replace('"@1"', "")
    return filled


def test_inputs_are_debian_only_and_pinned() -> None:
    env = config_env()
    assert env["SUITE"] == "bookworm" and env["ARCH"] == "arm64"
    assert env["MIRROR"].startswith("http://deb.debian.org/") and "debian-security" in env["SECURITY_MIRROR"]
    assert "non-free-firmware" in env["COMPONENTS"].split()  # raspi-firmware lives there
    packages = env["PACKAGES"].split()
    for needed in ("linux-image-arm64", "raspi-firmware", "systemd-sysv", "python3-venv", "initramfs-tools"):
        assert needed in packages
    assert int(env["BASE_SOURCE_DATE_EPOCH"]) > 1_700_000_000
    build = (IMAGE / "build.sh").read_text()
    assert "SOURCE_DATE_EPOCH=" in build and "packages.lock" in build and "IMAGE_SNAPSHOT" in build
    assert "--platform manylinux2014_aarch64" in build and "--python-version 3.11" in build


def test_partition_layout_is_a_b_ready_with_a_data_partition() -> None:
    cfg = genimage_cfg()
    parts = re.findall(r"partition (\w+) \{\s*partition-type = (0x[0-9A-F]+)", cfg)
    assert parts == [("boot", "0x0C"), ("root_a", "0x83"), ("root_b", "0x83"), ("data", "0x83")]
    assert 'partition-table-type = "mbr"' in cfg  # the Pi 3 boot ROM reads MBR only
    blocks = dict(re.findall(r"image (\S+) \{(.*?)\n\}", cfg, re.S))
    assert 'mountpoint = "/boot/firmware"' in blocks["boot.vfat"] and "vfat {" in blocks["boot.vfat"]
    assert 'mountpoint = "/var/lib/wattsmart-gateway"' in blocks["data.ext4"]
    assert 'root-owner = "999:999"' in blocks["data.ext4"]
    assert "empty = true" in blocks["root_b.ext4"]
    for name in ("root_a", "root_b", "data"):
        assert f'label = "{name}"' in blocks[f"{name}.ext4"] and "use-mke2fs = true" in blocks[f"{name}.ext4"]


def test_fstab_mounts_data_by_label_and_leaves_root_to_the_slot() -> None:
    rows = [
        line.split()
        for line in (IMAGE / "rootfs" / "etc" / "fstab").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    by_mount = {row[1]: row for row in rows}
    assert "/" not in by_mount  # root= on the kernel command line picks root_a or root_b
    data = by_mount["/var/lib/wattsmart-gateway"]
    assert data[0] == "LABEL=data" and data[2] == "ext4"
    assert {"noexec", "nodev", "nosuid", "x-systemd.growfs"} <= set(data[3].split(","))
    assert by_mount["/boot/firmware"][0] == "LABEL=BOOT"


def test_no_password_and_ssh_only_with_a_key() -> None:
    customize = (IMAGE / "customize.sh").read_text()
    assert "passwd --lock root" in customize
    assert "rm -f /etc/ssh/ssh_host_*" in customize  # every box makes its own host keys
    assert "systemctl mask ssh.service ssh.socket" in customize
    assert "authorized_keys" in customize and "echo uninitialized >/etc/machine-id" in customize
    sshd = (IMAGE / "rootfs" / "etc" / "ssh" / "sshd_config.d" / "10-wattsmart.conf").read_text()
    for line in (
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
    ):
        assert line in sshd.splitlines()
    hostkeys = (IMAGE / "rootfs" / "usr/local/lib/systemd/system/wattsmart-ssh-hostkeys.service").read_text()
    assert "ssh-keygen -A" in hostkeys and "Before=ssh.service" in hostkeys


def test_the_gateway_goes_in_with_deploy_install_sh() -> None:
    customize = (IMAGE / "customize.sh").read_text()
    assert re.search(r'sh "\$b/deploy/install.sh" --wheelhouse "\$b/wheelhouse" --no-start', customize)


def test_initramfs_keeps_the_root_drivers_without_most() -> None:
    initramfs = IMAGE / "base" / "initramfs-tools"
    assert "MODULES=list" in (initramfs / "conf.d" / "wattsmart.conf").read_text().splitlines()
    hook = initramfs / "hooks" / "wattsmart-modules"
    assert os.access(hook, os.X_OK)  # initramfs-tools skips hooks that are not executable
    text = hook.read_text()
    assert "auto_add_modules base mmc block usb_storage" in text
    for module in ("virtio_blk", "sd_mod", "uas", "ext4"):
        assert module in text
    # the data partition grows in the initramfs, before systemd waits on (and fsck/mounts) it
    grow = initramfs / "scripts" / "local-premount" / "wattsmart-grow-data"
    assert os.access(grow, os.X_OK) and "blkid -L data" in grow.read_text()
    tools = (initramfs / "hooks" / "wattsmart-tools").read_text()
    assert os.access(initramfs / "hooks" / "wattsmart-tools", os.X_OK)
    for tool in ("sfdisk", "partx", "blkid", "e2fsck"):
        assert f"/{tool}" in tools


def _guest_lab() -> ModuleType:
    spec = importlib.util.spec_from_file_location("guest_lab", IMAGE / "test" / "guest_lab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guest_lab_config_is_valid_for_the_gateway(tmp_path: Path) -> None:
    lab = _guest_lab()
    path = tmp_path / "gateway.yaml"
    path.write_text(lab.config_text("https://127.0.0.1:8443/dcap", identity=tmp_path))
    config = load_config(path)
    assert config.server.dcap_url.startswith("https://127.0.0.1:")
    assert config.inverter.transport == "tcp" and config.inverter.host == "127.0.0.1"
    assert config.gpio.backend == "fake" and config.status_page.host == "127.0.0.1"


def test_the_boot_test_keeps_the_guest_inside() -> None:
    source = (IMAGE / "test" / "boot_test.py").read_text()
    ast.parse(source)
    assert "restrict=on" in source and "-M" in source and '"virt"' in source
    assert "hostfwd" not in source and "guestfwd" not in source
    unit = (IMAGE / "test" / "wattsmart-image-test.service").read_text()
    assert "Before=wattsmart-gateway.service" in unit and "Type=notify" in unit
