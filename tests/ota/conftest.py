"""A box in tmp_path: release 1.0.0 installed and running, a fleet key, a fake systemd and clock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ota.keys import TrustStore
from app.ota.release_dirs import Releases, write_marker
from app.ota.settings import OtaSettings
from app.ota.updater import Updater
from tests.ota.fakes import READY, Clock, FakeRunner, FakeSystemd, dummy_module, make_wheel
from wattsmart_release.signing import build_bundle, generate_key

KEY_ID = "fleet-2026"


@dataclass
class Box:
    """Everything a test needs to drive updates on one simulated box."""

    tmp: Path
    settings: OtaSettings
    key: Ed25519PrivateKey
    systemd: FakeSystemd
    runner: FakeRunner
    clock: Clock
    control: list[bool]

    def updater(self) -> Updater:
        """A fresh updater, as a new process would build it (e.g. after a power cut)."""
        return Updater(
            self.settings,
            self.runner,
            control_in_force=lambda: self.control.pop(0) if self.control else False,
            monotonic=self.clock.time,
            wall_clock=self.clock.time,
            sleep=self.clock.sleep,
        )

    @property
    def releases(self) -> Releases:
        return Releases(self.settings.root)

    def bundle(
        self,
        version: str,
        behaviour: str = READY,
        *,
        min_version: str | None = None,
        key: Ed25519PrivateKey | None = None,
        key_id: str = KEY_ID,
        trust: Path | None = None,
        security_floor: str | None = None,
    ) -> Path:
        """A signed bundle holding a dummy gateway wheel that behaves as asked."""
        wheel = make_wheel(self.tmp / "wheels" / f"{version}-{behaviour}", version, behaviour)
        out = self.tmp / "bundles" / f"gw-{version}-{behaviour}.bundle"
        out.parent.mkdir(parents=True, exist_ok=True)
        build_bundle(
            out,
            [wheel],
            version=version,
            min_version=min_version,
            key=key or self.key,
            key_id=key_id,
            trust_statement=trust,
            security_floor=security_floor,
        )
        return out

    def rollback_entry(self) -> list[str]:
        """The command the rollback unit runs (OnFailure=), pointed at this box."""
        s = self.settings
        return [
            sys.executable,
            "-m",
            "app.ota",
            "rollback",
            "--crash-loop",
            "--reason",
            "crash loop (OnFailure)",
            "--root",
            str(s.root),
            "--state-dir",
            str(s.state_dir),
            "--trust-store",
            str(s.trust_store),
            "--systemctl",
            s.systemctl,
        ]

    def running(self) -> str | None:
        """The version the fake systemd last started, if it is active."""
        d = self.systemd.load()
        return str(d["starts"][-1]) if d["active"] == "active" and d["starts"] else None


def install_base(root: Path, version: str) -> None:
    """What deploy/install.sh leaves on a fresh box: one release, `current` pointing at it.

    Written by hand rather than with pip: it is only the starting point, and this is 10x faster.
    """
    releases = Releases(root)
    venv = releases.path(version)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    (site / "wattsmart_dummy").mkdir()
    (site / "wattsmart_dummy" / "__init__.py").write_text(dummy_module(version))
    script = venv / "bin" / "wattsmart-gateway"
    script.write_text(
        f"#!{venv}/bin/python\nimport sys\nfrom wattsmart_dummy import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    write_marker(venv, {"version": version})
    releases.point(releases.current, version)


@pytest.fixture
def make_box(tmp_path: Path) -> Callable[..., Box]:
    def make(**overrides: object) -> Box:
        key = generate_key()
        trust = tmp_path / "etc" / "ota-trust.json"
        TrustStore(1, {KEY_ID: key.public_key()}).save(trust)
        root = tmp_path / "opt"
        systemd = FakeSystemd(tmp_path / "systemd.json", root)
        (tmp_path / "bin").mkdir()
        script = systemd.write_script(tmp_path / "bin" / "systemctl")
        settings = OtaSettings(
            root=root,
            state_dir=tmp_path / "state",
            trust_store=trust,
            systemctl=str(script),
            ready_timeout_s=60,
            healthy_for_s=120,
            probe_interval_s=10,
            control_retry_s=30,
            **overrides,  # type: ignore[arg-type]
        )
        install_base(root, "1.0.0")
        systemd.handle(["restart", "--no-block", settings.service])
        return Box(tmp_path, settings, key, systemd, FakeRunner(systemd), Clock(), [])

    return make


@pytest.fixture
def box(make_box: Callable[..., Box]) -> Box:
    return make_box()
