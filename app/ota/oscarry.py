"""Carry the box's own files into a freshly written OS slot (RAUC's post-install handler runs this).

A slot written from a bundle is the fleet's generic root file system. Before it boots, it gets what
makes this box this box, and what it runs:

- identity: /etc/machine-id, SSH host keys (journald, D-Bus and SSH clients see the same box);
- configuration: /etc/wattsmart-gateway (gateway.yaml, the OTA trust store, whatever the installer put
  there) and root's app-update state /var/lib/wattsmart-gateway-ota (security floor, history);
- the gateway release in force, when it is newer than the one the bundle brings and the new slot's
  Python is the one its venv was built for (a venv cannot move to another interpreter): the release
  folder is copied to the same path (venvs cannot move, but need not) and `current` points at it,
  the bundle's own release staying as `previous`. Otherwise the bundle's release runs (logged).

The data partition (identity keys, outbox, ledger) is mounted by both slots and needs nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from app.ota.version import Version, is_version

_LOGGER = logging.getLogger(__name__)
RELEASES = Path("opt/wattsmart-gateway")
CARRIED_TREES = (Path("etc/wattsmart-gateway"), Path("var/lib/wattsmart-gateway-ota"))
#: never carried out of the app-update state folder: this boot's lock, half-finished downloads
SKIPPED = frozenset({"lock", "downloads"})


def carry(new_root: Path, old_root: Path = Path("/")) -> list[str]:
    """Copy identity, configuration and (when newer) the gateway release into `new_root`; what was carried."""
    carried: list[str] = []
    machine_id = old_root / "etc/machine-id"
    if machine_id.is_file() and re.fullmatch(r"[0-9a-f]{32}\n?", machine_id.read_text()):
        shutil.copy2(machine_id, new_root / "etc/machine-id")
        carried.append("etc/machine-id")
    for key in sorted((old_root / "etc/ssh").glob("ssh_host_*")):
        shutil.copy2(key, new_root / "etc/ssh" / key.name)
        carried.append(f"etc/ssh/{key.name}")
    for tree in CARRIED_TREES:
        if (old_root / tree).is_dir():
            _copy_tree(old_root / tree, new_root / tree)
            carried.append(str(tree))
    release = carry_release(new_root, old_root)
    if release is not None:
        carried.append(release)
    return carried


def _copy_tree(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, symlinks=True, ignore=lambda _d, names: [n for n in names if n in SKIPPED])


def linked_release(root: Path) -> str | None:
    """The version `current` points at under `root`'s /opt/wattsmart-gateway."""
    try:
        name = Path(os.readlink(root / RELEASES / "current")).name
    except OSError:
        return None
    return name if is_version(name) else None


def venv_python(release: Path) -> str | None:
    """`3.11` for a venv made by Python 3.11 (its pyvenv.cfg)."""
    try:
        text = (release / "pyvenv.cfg").read_text()
    except OSError:
        return None
    found = re.search(r"^version(?:_info)?\s*=\s*(\d+)\.(\d+)", text, re.MULTILINE)
    return f"{found.group(1)}.{found.group(2)}" if found else None


def slot_python(root: Path) -> str | None:
    """`3.11` when `root`'s /usr/bin/python3 is Python 3.11."""
    try:
        target = os.readlink(root / "usr/bin/python3")
    except OSError:
        return None
    found = re.fullmatch(r"(?:.*/)?python(\d+)\.(\d+)", target)
    return f"{found.group(1)}.{found.group(2)}" if found else None


def carry_release(new_root: Path, old_root: Path) -> str | None:
    """Copy the running release into `new_root` and link it when it is newer and fits; what was carried."""
    running, bundled = linked_release(old_root), linked_release(new_root)
    if running is None:
        _LOGGER.warning("no gateway release in force here: the new slot runs its own (%s)", bundled)
        return None
    if bundled is not None and Version(running) <= Version(bundled):
        _LOGGER.info("the new slot's gateway %s is not older than the running %s: it stays", bundled, running)
        return None
    source = old_root / RELEASES / "releases" / running
    wants, has = venv_python(source), slot_python(new_root)
    if wants is None or wants != has:
        _LOGGER.warning(
            "gateway %s (Python %s) cannot run on the new slot's Python %s: the slot runs its own %s",
            running,
            wants,
            has,
            bundled,
        )
        return None
    dest = new_root / RELEASES / "releases" / running
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, symlinks=True)
    _point(new_root / RELEASES, "current", running)
    if bundled is not None:
        _point(new_root / RELEASES, "previous", bundled)
    _LOGGER.warning("gateway %s carried into the new slot (its own %s kept as previous)", running, bundled)
    return f"{RELEASES}/releases/{running}"


def _point(folder: Path, name: str, version: str) -> None:
    tmp = folder / f"{name}.new"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(f"releases/{version}")
    tmp.replace(folder / name)
