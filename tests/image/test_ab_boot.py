"""The A/B boot selection: RAUC's custom backend (ab-boot) and the initramfs's slot selector together.

Both scripts run for real (dash, the initramfs's shell family) on a folder standing in for the boot
partition; in the selector, blkid/mount/umount are recorders on PATH (no disk). Each "boot" is one
run of the selector, so boot counting and the fall-back are followed across boots as the box would.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BACKEND = REPO / "image" / "rootfs" / "usr" / "local" / "lib" / "wattsmart-os" / "ab-boot"
SELECTOR = REPO / "image" / "rootfs" / "etc" / "initramfs-tools" / "scripts" / "local-top" / "wattsmart-ab"
SHELL = shutil.which("dash") or shutil.which("sh") or "sh"


class Box:
    """A boot partition folder, fake initramfs tools, and the two scripts run against them."""

    def __init__(self, tmp_path: Path, partuuid: str = "5741545a-01") -> None:
        self.boot = tmp_path / "boot"
        self.boot.mkdir()
        self.rundir = tmp_path / "run"
        self.param = tmp_path / "param.conf"
        self.tools = tmp_path / "bin"
        self.tools.mkdir()
        self.calls = tmp_path / "calls"
        for name, body in {
            "blkid": f'echo "blkid $*" >>{self.calls}\n'
            f'case "$*" in *PARTUUID*) echo {partuuid} ;; *) echo /dev/vda1 ;; esac',
            "mount": f'echo "mount $*" >>{self.calls}',
            "umount": f'echo "umount $*" >>{self.calls}',
            "sleep": "true",
        }.items():
            (self.tools / name).write_text(f"#!/bin/sh\n{body}\n")
            (self.tools / name).chmod(0o755)
        (self.boot / "cmdline.txt").write_text("console=tty0 root=LABEL=root_a rootwait\n")
        (self.boot / "wattsmart-ab.env").write_text("ORDER=A B\nA_LEFT=3\nB_LEFT=0\n")

    def rauc(self, *args: str) -> str:
        """RAUC calling its custom backend."""
        env = {"PATH": "/usr/bin:/bin", "WSG_AB_DIR": str(self.boot)}
        res = subprocess.run(
            [SHELL, str(BACKEND), *args], capture_output=True, text=True, env=env, check=False
        )
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def power_on(self) -> tuple[str, str]:
        """One boot through the selector: (the slot it chose, the ROOT it gave init)."""
        self.param.unlink(missing_ok=True)
        env = {
            "PATH": f"{self.tools}:/usr/bin:/bin",
            "WSG_AB_MNT": str(self.boot),
            "WSG_AB_RUN": str(self.rundir),
            "WSG_AB_PARAM": str(self.param),
            "ROOT": "LABEL=root_a",
        }
        res = subprocess.run([SHELL, str(SELECTOR)], capture_output=True, text=True, env=env, check=True)
        booted = (self.rundir / "booted").read_text().strip().removeprefix("WSG_BOOTED=")
        root = self.param.read_text().strip().removeprefix("ROOT=") if self.param.exists() else ""
        assert booted in res.stdout or not root
        return booted, root

    def env(self) -> str:
        return (self.boot / "wattsmart-ab.env").read_text()


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def test_fresh_image_boots_a_and_the_empty_slot_is_bad(box: Box) -> None:
    assert box.power_on() == ("A", "PARTUUID=5741545a-02")
    assert box.rauc("get-primary") == "A"
    assert box.rauc("get-state", "B") == "bad"
    box.rauc("set-state", "A", "good")  # the boot-time unit re-arms a committed slot
    assert "A_LEFT=3" in box.env()


def test_update_then_commit(box: Box) -> None:
    box.rauc("set-state", "B", "bad")  # RAUC, before writing the slot
    box.rauc("set-primary", "B")  # after writing it
    assert box.rauc("get-primary") == "B"
    assert "root=LABEL=root_b" in (box.boot / "cmdline.txt").read_text()  # the Pi firmware's view
    assert box.power_on() == ("B", "PARTUUID=5741545a-03")
    assert "B_LEFT=2" in box.env()
    box.rauc("set-state", "B", "good")  # mark-good after the health gate
    for _ in range(5):
        assert box.power_on()[0] == "B"
        box.rauc("set-state", "B", "good")


def test_marked_bad_falls_back_at_the_next_boot(box: Box) -> None:
    box.rauc("set-primary", "B")
    assert box.power_on()[0] == "B"
    box.rauc("set-state", "B", "bad")  # the trial failed
    assert "root=LABEL=root_a" in (box.boot / "cmdline.txt").read_text()
    assert box.power_on() == ("A", "PARTUUID=5741545a-02")
    box.rauc("set-primary", "A")  # mark-active after the rollback
    assert box.rauc("get-primary") == "A"
    assert box.rauc("get-state", "B") == "bad"


def test_a_slot_that_never_reaches_userspace_runs_out_of_attempts(box: Box) -> None:
    box.rauc("set-primary", "B")
    seen = [box.power_on()[0] for _ in range(4)]  # B panics each time: nobody marks it good
    assert seen == ["B", "B", "B", "A"]
    assert box.rauc("get-primary") == "A"  # RAUC sees the fall-back too


def test_damaged_selection_file_boots_slot_a(box: Box) -> None:
    (box.boot / "wattsmart-ab.env").write_text("ORDER=B A\nA_LEFT=3\nB_LE")  # power cut mid-write
    assert box.power_on()[0] == "A"  # B's attempts were lost with the cut: the defaults give it none
    (box.boot / "wattsmart-ab.env").write_bytes(b"\x00\xff garbage")
    assert box.power_on() == ("A", "PARTUUID=5741545a-02")


def test_without_the_selection_file_root_from_the_command_line_stands(box: Box) -> None:
    (box.boot / "wattsmart-ab.env").unlink()
    assert box.power_on() == ("A", "")


def test_backend_refuses_unknown_slots_and_states(box: Box) -> None:
    env = {"PATH": "/usr/bin:/bin", "WSG_AB_DIR": str(box.boot)}
    for args in (["set-primary", "C"], ["set-state", "A", "meh"], ["frobnicate"]):
        res = subprocess.run(
            [SHELL, str(BACKEND), *args], capture_output=True, text=True, env=env, check=False
        )
        assert res.returncode != 0
        assert "ab-boot:" in res.stderr
    assert box.env() == "ORDER=A B\nA_LEFT=3\nB_LEFT=0\n"
