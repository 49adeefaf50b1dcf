"""What ships is what runs: the box's wheel holds no lab, simulator, release tool or signing code.

The wheel is built as a box gets it (`pip wheel --no-deps`, like the image build and test-systemd),
from a copy of the checkout's sources: the build writes nothing into the checkout. The lab
(tests/labpkg) and the release tool (deploy/release) are distributions of their own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: everything a packaging mistake could pull in (tests/ holds the lab package, deploy/ the release tool)
SOURCES = ("app", "hal", "tests", "bench", "deploy", "pyproject.toml", "README.md")

#: folders and modules that must not be in the wheel
FORBIDDEN_PATHS = re.compile(
    r"^(app/lab/|wattsmart_lab/|wattsmart_release/|tests/|bench/|deploy/)"
    r"|(^|/)(sunspec_server|sunspec_device|release)\.py$"
    r"|^hal/inverter/sim\.py$|_sim\.py$"
)
#: what the lab, the simulators and the release tool define or import, wherever it might be put
FORBIDDEN_CODE = re.compile(
    r"^class (LabServer|LabTree|SunSpecServer|SunSpecDevice|SimInverter|BatteryModel|SimulatedTimebase)\b"
    r"|^\s*(from|import) (wattsmart_lab|wattsmart_release|pymodbus\.server|pymodbus\.simulator)\b"
    # the fleet's signing (Ed25519 private keys): the box verifies only (its own identity key is EC)
    r"|\bEd25519PrivateKey\b|^def (build_bundle|sign_manifest)\b",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The box's wheel, built from a copy of this checkout."""
    work = tmp_path_factory.mktemp("box-wheel")
    source = work / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, source / name)
    out = work / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("wattsmart_gateway-*.whl")
    return built


def test_the_box_wheel_holds_the_gateway_and_no_lab_simulator_or_release_tool(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        code = {n: z.read(n).decode() for n in names if n.endswith(".py")}
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    # the check sees the real package: the run path and the box's own update code are there
    runs = {"app/gateway.py", "hal/inverter/factory.py", "hal/inverter/sunspec.py", "app/ota/updater.py"}
    assert runs <= set(names)
    assert [n for n in names if FORBIDDEN_PATHS.search(n)] == []
    found = {n: m.group(0).strip() for n, text in code.items() if (m := FORBIDDEN_CODE.search(text))}
    assert found == {}
    scripts = re.findall(r"^(\S+) = (\S+)$", entry_points, re.MULTILINE)
    assert scripts == [("wattsmart-gateway", "app.cli:main")]
    print(f"\nbox wheel: {wheel.name}, {wheel.stat().st_size} bytes, {len(names)} files")


def test_the_forbidden_patterns_can_fail() -> None:
    """The same patterns on what the lab and the release tool are: each must be caught."""
    lab = REPO / "tests" / "labpkg" / "wattsmart_lab"
    paths = ("wattsmart_lab/server.py", "app/lab/demo.py", "hal/inverter/sim.py", "hal/inverter/meter_sim.py")
    for path in (*paths, "app/ota/release.py"):
        assert FORBIDDEN_PATHS.search(path), path
    for module in ("server", "sunspec_server", "sim", "battery", "timebase"):
        assert FORBIDDEN_CODE.search((lab / f"{module}.py").read_text()), module
    assert FORBIDDEN_CODE.search("from wattsmart_release.cli import main\n")
    signing = (REPO / "deploy" / "release" / "wattsmart_release" / "signing.py").read_text()
    assert len(FORBIDDEN_CODE.findall(signing)) >= 3  # the key type, build_bundle, sign_manifest
