"""Release folders on disk, the layout deploy/install.sh makes: `<root>/releases/<version>/` is a venv
(`bin/wattsmart-gateway`), `<root>/current` and `<root>/previous` are relative symlinks to them.

A release is built in place (venvs hold absolute paths, so they cannot be moved); it counts as
installed once its `bin/wattsmart-gateway` exists, as for install.sh, and the update state file
says whether an install into it was interrupted. Bundles are unpacked under `<root>/staging/`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

from app.ota.errors import InstallFailed
from app.ota.jsonfile import fsync_dir, write_json
from app.ota.runner import CommandResult, CommandRunner
from app.ota.version import Version, is_version

_LOGGER = logging.getLogger(__name__)

#: written into a release folder by the updater: which bundle it came from
MARKER = "ota-release.json"
#: a bundle's key-rotation statement, kept with its release until the release is committed
TRUST_STATEMENT = "ota-trust.json"
COMMAND = "wattsmart-gateway"


class Releases:
    """The release folders and links under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "releases"
        self.current = root / "current"
        self.previous = root / "previous"
        self.staging_root = root / "staging"

    def path(self, version: str) -> Path:
        """The folder of `version`."""
        if not is_version(version):  # the name comes from a signed manifest, but never trust a path
            raise ValueError(f"not a release version: {version!r}")
        return self.folder / version

    def staging(self, version: str) -> Path:
        """Where the bundle of `version` is unpacked while it is installed."""
        return self.staging_root / self.path(version).name

    def command(self, version: str) -> Path:
        """The release's `wattsmart-gateway` command."""
        return self.path(version) / "bin" / COMMAND

    def complete(self, version: str) -> bool:
        """Whether `version` is installed (the test install.sh uses too)."""
        return os.access(self.command(version), os.X_OK)

    def system_site_packages(self, version: str | None) -> bool:
        """Whether the release's venv sees Debian's packages (install.sh --system-site-packages)."""
        if version is None:
            return False
        try:
            cfg = (self.path(version) / "pyvenv.cfg").read_text()
        except OSError:
            return False
        return any(
            line.replace(" ", "").lower() == "include-system-site-packages=true" for line in cfg.splitlines()
        )

    def linked(self, link: Path | None = None) -> str | None:
        """The version a link points at, or None when it is missing, dangling or foreign."""
        link = link or self.current
        try:
            target = os.readlink(link)
        except OSError:
            return None
        name = Path(target).name
        if not is_version(name) or not (self.folder / name).is_dir():
            return None
        return name

    def installed(self) -> list[str]:
        """Complete releases, oldest first."""
        found = [p.name for p in self.folder.glob("*") if is_version(p.name) and self.complete(p.name)]
        return sorted(found, key=Version)

    def point(self, link: Path, version: str) -> None:
        """Point `link` at `version` atomically: a new link under a temporary name, renamed over the old."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f"{link.name}.new")  # the name install.sh uses too
        tmp.unlink(missing_ok=True)
        # relative, so the tree stays valid when mounted elsewhere (image build, nspawn)
        tmp.symlink_to(Path("releases") / version)
        os.replace(tmp, link)
        fsync_dir(self.root)

    def clean_temporaries(self) -> None:
        """Remove half-made links and unpacked bundles left by a power cut."""
        for name in ("current.new", "previous.new"):
            (self.root / name).unlink(missing_ok=True)
        shutil.rmtree(self.staging_root, ignore_errors=True)

    def remove(self, version: str) -> None:
        """Delete a release folder (never the one `current` or `previous` points at)."""
        if version in (self.linked(self.current), self.linked(self.previous)):
            raise AssertionError(f"refusing to delete linked release {version}")
        shutil.rmtree(self.path(version), ignore_errors=True)

    def prune(self, keep: int) -> None:
        """Delete releases beyond the linked ones and the `keep` newest others, and incomplete folders."""
        linked = {self.linked(self.current), self.linked(self.previous)}
        others = [v for v in self.installed() if v not in linked]
        for version in others[: max(len(others) - keep, 0)]:
            _LOGGER.info("removing old release %s", version)
            self.remove(version)
        for p in self.folder.glob("*"):
            if p.is_dir() and p.name not in linked and not self.complete(p.name):
                _LOGGER.info("removing incomplete release folder %s", p.name)
                shutil.rmtree(p, ignore_errors=True)


def create_venv(
    runner: CommandRunner, venv: Path, wheels: Path, requirement: str, system_site_packages: bool = False
) -> None:
    """Create `venv` and install `requirement` from `wheels` only (never from an index)."""
    python = sys.executable
    # Reuse this interpreter's pip (`pip --python`) instead of seeding pip into every release:
    # much faster on a Pi, and the new venv carries no pip it does not need.
    own_pip = importlib.util.find_spec("pip") is not None
    options = ["--without-pip"] if own_pip else []
    options += ["--system-site-packages"] if system_site_packages else []
    venv_cmd = [python, "-m", "venv", *options, str(venv)]
    _check(runner.run(venv_cmd, timeout_s=300), "creating the venv")
    target = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--python", target] if own_pip else [target, "-m", "pip"]
    install = [
        *pip,
        "install",
        "--no-index",
        "--only-binary=:all:",  # never compile on the box: every wheel must be in the bundle
        "--find-links",
        str(wheels),
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        requirement,
    ]
    _check(runner.run(install, timeout_s=1800), "installing the wheels")


def _check(result: CommandResult, what: str) -> None:
    if not result.ok:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise InstallFailed(f"{what} failed (exit {result.returncode}): {' / '.join(tail)}")


def write_marker(folder: Path, summary: dict[str, object]) -> None:
    """Mark a release folder complete."""
    write_json(folder / MARKER, summary)
