"""Test backends for updates: tiny real wheels, a file-backed fake systemd, a fake clock."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.ota.runner import CommandResult, SubprocessRunner

REPO = Path(__file__).resolve().parents[2]

#: what the dummy gateway does when systemd starts it
READY, NEVER_READY, CRASH, BROKEN = "ready", "never-ready", "crash", "broken"

_MODULE = """\
import sys

VERSION = {version!r}
BEHAVIOUR = {behaviour!r}


def main():
    if "--version" in sys.argv:
        if BEHAVIOUR == "broken":
            raise ImportError("a dependency is missing")
        print(VERSION)
        return 0
    if BEHAVIOUR == "crash":
        return 3
    if BEHAVIOUR == "ready":
        print("READY")
    return 0
"""


def dummy_module(version: str, behaviour: str = READY) -> str:
    """Source of the dummy gateway package."""
    return _MODULE.format(version=version, behaviour=behaviour)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, version: str, behaviour: str = READY) -> Path:
    """A minimal valid wheel `wattsmart-gateway` whose console script behaves as asked."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"wattsmart_gateway-{version}.dist-info"
    files = {
        "wattsmart_dummy/__init__.py": dummy_module(version, behaviour).encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: wattsmart-gateway\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": b"[console_scripts]\nwattsmart-gateway = wattsmart_dummy:main\n",
    }
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = folder / f"wattsmart_gateway-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


@dataclass
class Clock:
    """Wall-clock seconds that advance only when the code under test sleeps."""

    now: float = 1_800_000_000.0
    slept: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeSystemd:
    """`systemctl restart|show` for one unit, state kept in a JSON file so subprocesses share it.

    A restart really runs `<root>/current/bin/wattsmart-gateway run`: printing READY means
    active; exiting 0 silently means stuck before READY; a non-zero exit means a crash loop that
    ends in `failed` with the OnFailure= command pending (run by `settle()`).
    """

    def __init__(self, state: Path, root: Path) -> None:
        self.state_path, self.root = state, root

    def load(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return {"active": "active", "sub": "running", "restarts": 0, "result": "success", "starts": []}
        data: dict[str, Any] = json.loads(self.state_path.read_text())
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(data))

    def handle(self, argv: Sequence[str]) -> CommandResult:
        if argv[:2] == ["restart", "--no-block"]:
            self._start()
            return CommandResult(0)
        if argv[:1] == ["reset-failed"]:
            return CommandResult(0)
        if argv[:1] == ["show"]:
            d = self.load()
            props = {"ActiveState": d["active"], "SubState": d["sub"], "NRestarts": d["restarts"]}
            props["Result"] = d["result"]
            return CommandResult(0, "".join(f"{k}={v}\n" for k, v in props.items()))
        return CommandResult(1, "", f"fake systemctl: unsupported {list(argv)}")

    def _start(self) -> None:
        d = self.load()
        command = self.root / "current" / "bin" / "wattsmart-gateway"
        try:
            run = subprocess.run([str(command), "run"], capture_output=True, text=True, timeout=60)
            rc, out = run.returncode, run.stdout
        except OSError:
            rc, out = 203, ""  # systemd's status=203/EXEC
        d["starts"].append(Path(command).resolve().parents[1].name)
        if rc != 0:
            # Restart=on-failure until StartLimitBurst, then failed and OnFailure= fires
            d.update(active="failed", sub="failed", restarts=5, result="start-limit-hit", on_failure=True)
        elif "READY" in out:
            d.update(active="active", sub="running", restarts=0, result="success")
        else:
            d.update(active="activating", sub="start", restarts=0, result="success")
        self.save(d)

    def settle(self, on_failure: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
        """Let systemd run OnFailure= if the last start crash-looped."""
        d = self.load()
        if not d.get("on_failure"):
            return None
        d["on_failure"] = False
        self.save(d)
        return subprocess.run(list(on_failure), capture_output=True, text=True, timeout=120, cwd=REPO)

    def write_script(self, path: Path) -> Path:
        """An executable `systemctl` backed by this fake, for subprocesses (the rollback entry)."""
        path.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
            "from pathlib import Path\nfrom tests.ota.fakes import FakeSystemd\n"
            f"fake = FakeSystemd(Path({str(self.state_path)!r}), Path({str(self.root)!r}))\n"
            "r = fake.handle(sys.argv[1:])\n"
            "sys.stdout.write(r.stdout)\nsys.stderr.write(r.stderr)\nsys.exit(r.returncode)\n"
        )
        path.chmod(0o755)
        return path


class FakeRunner:
    """Runs systemctl through the fake, everything else (venv, pip, preflight) for real."""

    def __init__(self, systemd: FakeSystemd) -> None:
        self.systemd = systemd
        self.real = SubprocessRunner()
        self.commands: list[list[str]] = []

    def run(self, argv: Sequence[str], timeout_s: float = 600.0) -> CommandResult:
        self.commands.append(list(argv))
        if Path(argv[0]).name == "systemctl":
            return self.systemd.handle(list(argv[1:]))
        return self.real.run(argv, timeout_s)
