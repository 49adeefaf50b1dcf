"""The initramfs script that grows the data partition, run against a fake sysfs and fake tools.

In the image it runs under klibc's sh before anything is mounted; here under dash (the same shell
family) with blkid/sfdisk/partx replaced by recorders, so its arithmetic and its path handling
(sysfs symlinks, the last-partition rule) are checked without a disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "image" / "base" / "initramfs-tools" / "scripts" / "local-premount" / "wattsmart-grow-data"
MIB = 2048  # 512-byte sectors per MiB
SHELL = shutil.which("dash") or shutil.which("sh") or "sh"


def fake_card(tmp_path: Path, disk_mib: int, parts: list[tuple[int, int]]) -> tuple[Path, Path]:
    """A sysfs like the kernel's: class/block/<part> -> devices/.../block/vda/<part>; tools on PATH."""
    sysfs = tmp_path / "sys"
    disk = sysfs / "devices" / "platform" / "virtio" / "block" / "vda"
    disk.mkdir(parents=True)
    (disk / "size").write_text(f"{disk_mib * MIB}\n")
    klass = sysfs / "class" / "block"
    klass.mkdir(parents=True)
    for n, (start_mib, size_mib) in enumerate(parts, start=1):
        part = disk / f"vda{n}"
        part.mkdir()
        (part / "partition").write_text(f"{n}\n")
        (part / "start").write_text(f"{start_mib * MIB}\n")
        (part / "size").write_text(f"{size_mib * MIB}\n")
        (klass / f"vda{n}").symlink_to(os.path.relpath(part, klass))
    tools = tmp_path / "bin"
    tools.mkdir()
    log = tmp_path / "calls"
    for name, body in {
        "blkid": f'echo "$*" >>{log}; echo /dev/vda{len(parts)}',
        "sfdisk": f'echo "sfdisk $* $(cat)" >>{log}',
        "partx": f'echo "partx $*" >>{log}',
    }.items():
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    return sysfs, tools


def run(sysfs: Path, tools: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{tools}:/usr/bin:/bin", "WSG_SYSFS": str(sysfs)}
    return subprocess.run([SHELL, str(SCRIPT)], capture_output=True, text=True, env=env, check=False)


LAYOUT = [(4, 256), (260, 1536), (1796, 1536), (3332, 128)]  # boot, root_a, root_b, data (MiB)


def test_grows_the_last_partition_into_a_bigger_card(tmp_path: Path) -> None:
    sysfs, tools = fake_card(tmp_path, 3460 + 256, LAYOUT)
    res = run(sysfs, tools)
    assert res.returncode == 0, res.stderr
    assert "growing /dev/vda4 (partition 4 of /dev/vda) by 255 MiB" in res.stdout
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "-L data"
    assert calls[1] == "sfdisk --quiet --no-reread --no-tell-kernel -N 4 /dev/vda , +"
    assert calls[2] == "partx --update --nr 4 /dev/vda"


def test_does_nothing_when_the_card_is_full(tmp_path: Path) -> None:
    sysfs, tools = fake_card(tmp_path, 3460 + 8, LAYOUT)  # less than 16 MiB to gain
    res = run(sysfs, tools)
    assert res.returncode == 0 and res.stdout == ""
    assert (tmp_path / "calls").read_text().splitlines() == ["-L data"]


def test_refuses_a_data_partition_that_is_not_last(tmp_path: Path) -> None:
    sysfs, tools = fake_card(tmp_path, 8000, [(4, 256), (260, 1536), (1796, 128), (3332, 1536)])
    (tools / "blkid").write_text(f'#!/bin/sh\necho "$*" >>{tmp_path / "calls"}; echo /dev/vda3\n')
    res = run(sysfs, tools)
    assert res.returncode == 0 and "not the last partition" in res.stdout
    assert not any(c.startswith("sfdisk") for c in (tmp_path / "calls").read_text().splitlines())


@pytest.mark.parametrize("blkid", ["exit 2", "echo /dev/nonexistent"])
def test_no_data_partition_is_not_an_error(tmp_path: Path, blkid: str) -> None:
    sysfs, tools = fake_card(tmp_path, 8000, LAYOUT)
    (tools / "blkid").write_text(f"#!/bin/sh\n{blkid}\n")
    res = run(sysfs, tools)
    assert res.returncode == 0 and res.stdout == ""
