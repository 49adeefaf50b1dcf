"""The pi-gen stage (image/pi-gen/): it cannot be built here, so its shape is checked instead.

pi-gen runs, per sub-stage folder and in order: NN-debconf, NN-packages(-nr), NN-patches/,
NN-run.sh (host side, executed: must be executable) and NN-run-chroot.sh (piped into the chroot);
a stage needs prerun.sh (copy_previous) and EXPORT_IMAGE to be exported. Anything else in a
sub-stage is ignored silently, which is the mistake these tests catch.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIGEN = REPO / "image" / "pi-gen"
STAGE = PIGEN / "stage-wattsmart"
SUBSTAGE_ENTRY = re.compile(r"^\d\d-(debconf|packages|packages-nr|patches|run\.sh|run-chroot\.sh)$|^files$")
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def substages() -> list[Path]:
    return sorted(p for p in STAGE.iterdir() if p.is_dir())


def test_stage_has_prerun_export_and_ordered_substages() -> None:
    prerun = STAGE / "prerun.sh"
    assert prerun.is_file() and os.access(prerun, os.X_OK)
    assert "copy_previous" in prerun.read_text()
    assert "IMG_SUFFIX=" in (STAGE / "EXPORT_IMAGE").read_text()
    names = [p.name for p in substages()]
    assert names and all(re.fullmatch(r"\d\d-[a-z0-9-]+", n) for n in names), names
    assert names == sorted(names)


def test_substage_entries_are_ones_pi_gen_runs() -> None:
    for sub in substages():
        for entry in sub.iterdir():
            assert SUBSTAGE_ENTRY.match(entry.name), f"pi-gen would ignore {entry.relative_to(REPO)}"
            if entry.name.endswith(".sh"):
                text = entry.read_text()
                assert text.startswith("#!/bin/bash -e\n"), f"{entry.name}: pi-gen's scripts use bash -e"
                assert os.access(entry, os.X_OK), f"{entry.relative_to(REPO)} is not executable"
            if entry.name.endswith(("-packages", "-packages-nr")):
                for line in entry.read_text().split():
                    assert DEBIAN_PACKAGE.match(line), f"{entry.name}: {line!r}"


def test_gateway_is_installed_with_the_same_installer_and_layout() -> None:
    chroot = (STAGE / "00-gateway" / "02-run-chroot.sh").read_text()
    assert "deploy/install.sh" in chroot
    # offline from the staged wheelhouse; Raspberry Pi OS's RPi.GPIO (rpi-lgpio) stays visible
    assert "--wheelhouse" in chroot and "--system-site-packages" in chroot and "--no-start" in chroot
    assert "/opt/wattsmart-gateway/current/bin/wattsmart-gateway" in chroot
    host = (STAGE / "00-gateway" / "01-run.sh").read_text()
    assert "${ROOTFS_DIR}" in host
    for needed in ("python3-venv",):
        assert needed in (STAGE / "00-gateway" / "00-packages-nr").read_text().split()


def _sourced(extra_env: dict[str, str]) -> dict[str, str]:
    names = "ENABLE_SSH PUBKEY_ONLY_SSH PUBKEY_SSH_FIRST_USER FIRST_USER_PASS FIRST_USER_NAME"
    names += " DISABLE_FIRST_BOOT_USER_RENAME ENABLE_CLOUD_INIT RELEASE"
    script = f'set -u; . "{PIGEN / "config"}"; for v in {names}; do echo "$v=${{!v-<unset>}}"; done'
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra_env}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def test_config_ssh_off_and_no_password_by_default() -> None:
    values = _sourced({})
    assert values["ENABLE_SSH"] == "0"
    assert values["FIRST_USER_PASS"] == "<unset>"  # never a password in the repository
    assert not re.search(r"^\s*FIRST_USER_PASS=", (PIGEN / "config").read_text(), re.M)
    assert values["DISABLE_FIRST_BOOT_USER_RENAME"] == "1"  # no first-boot "make a user" wizard
    assert values["ENABLE_CLOUD_INIT"] == "0"
    assert values["RELEASE"] == "bookworm"  # Python 3.11, what the wheelhouse is built for


def test_the_throwaway_password_pi_gen_insists_on_is_random_and_locked() -> None:
    # pi-gen's build.sh refuses DISABLE_FIRST_BOOT_USER_RENAME=1 without FIRST_USER_PASS
    wrapper = (PIGEN / "build.sh").read_text()
    assert "/dev/urandom" in wrapper and 'echo "FIRST_USER_PASS=\\"$throwaway\\""' in wrapper
    hardening = (STAGE / "01-hardening" / "00-run.sh").read_text()
    assert 'passwd --lock "${FIRST_USER_NAME}"' in hardening


def test_config_ssh_key_only_when_a_key_is_given() -> None:
    values = _sourced({"SSH_PUBKEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample installer"})
    assert values["ENABLE_SSH"] == "1"
    assert values["PUBKEY_ONLY_SSH"] == "1"
    assert values["PUBKEY_SSH_FIRST_USER"].startswith("ssh-ed25519 ")


def test_hardening_keeps_the_uart_for_rs485_and_locks_accounts() -> None:
    run = (STAGE / "01-hardening" / "00-run.sh").read_text()
    assert "dtoverlay=disable-bt" in run and "console=serial0" in run
    chroot = (STAGE / "01-hardening" / "01-run-chroot.sh").read_text()
    assert "passwd --lock root" in chroot and "ssh_host_" in chroot


def test_generated_stage_files_are_not_committed() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/image/pi-gen/stage-wattsmart/*/files/" in ignored
    assert "/image/pi-gen/.pi-gen/" in ignored


def shell_scripts() -> list[Path]:
    image = REPO / "image"
    scripts = [p for p in image.rglob("*.sh") if ".pi-gen" not in p.parts and "cache" not in p.parts]
    scripts += [
        image / "config.env",
        image / "pi-gen" / "config",
        STAGE / "EXPORT_IMAGE",
        *sorted((image / "base" / "initramfs-tools" / "hooks").iterdir()),
        *sorted((image / "base" / "initramfs-tools" / "scripts" / "local-premount").iterdir()),
    ]
    return sorted(scripts)


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)"
)
def test_shell_scripts_are_shellcheck_clean() -> None:
    res = subprocess.run(
        ["shellcheck", "-x", "--format=gcc", *map(str, shell_scripts())],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
