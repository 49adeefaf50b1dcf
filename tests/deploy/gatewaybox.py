"""The booted test box shared by the slow suites: a cached Debian tree with the gateway installed by
deploy/install.sh, the SunSpec battery simulator as a second unit, booted under systemd-nspawn.

`booted_box()` builds and boots it once per session (tests/deploy/conftest.py); test_systemd_boot.py
and test_systemd_ota.py run against it in that order. What the fixture leaves in the run folder:
`files/` (bound read-only at /mnt/test: the test config, the battery probe, the fleet trust store,
a copy of the lab package for the simulator unit, and whatever a test drops there later, e.g.
update bundles), `fleet/` (the fleet signing key, on the
host only), `wheels/` (the wheelhouse, at /mnt/wheels).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import wattsmart_lab
from tests.deploy import nspawn

DEPLOY = nspawn.REPO / "deploy"
UNIT = "wattsmart-gateway.service"
SIM_UNIT = "wattsmart-battery-sim.service"
USER = "wattsmart-gateway"
SIM_PORT = 5020
#: short enough to keep the test quick, long enough for a loaded CI machine to start Python
WATCHDOG_S = 5
PYTHON = "/opt/wattsmart-gateway/current/bin/python"
#: the lab package (the simulator's code): not in the box's wheel, copied to files/lab/ for the sim unit
LAB_SOURCE = Path(wattsmart_lab.__file__).parent
LAB_INSIDE = "/mnt/test/lab"

GATEWAY_YAML = f"""\
# Test configuration inside the nspawn container. Nothing listens at dcap_url: READY must not wait
# for the utility.
server:
  dcap_url: https://127.0.0.1:8443/dcap
  ca_file: /var/lib/wattsmart-gateway/identity/ca.pem
  cert_file: /var/lib/wattsmart-gateway/identity/client.pem
  key_file: /var/lib/wattsmart-gateway/identity/client.key
  tls:
    check_hostname: false
inverter:
  transport: tcp
  host: 127.0.0.1
  port: {SIM_PORT}
  unit_id: 1
gpio:
  backend: fake
status_page:
  enabled: true
  host: 127.0.0.1
  port: 8080
state_dir: /var/lib/wattsmart-gateway
log_level: INFO
# Update trials shortened for the test (production: 300 s to READY, 600 s healthy).
ota:
  ready_timeout_s: 10
  healthy_for_s: 5
  probe_interval_s: 0.5
  control_retry_s: 1
"""

SIM_SERVICE = f"""\
[Unit]
Description=Simulated SunSpec battery inverter (test)

[Service]
# the lab package is not in the box's release: a copy beside the test files, for this unit only
Environment=PYTHONPATH={LAB_INSIDE} PYTHONDONTWRITEBYTECODE=1
ExecStart={PYTHON} -m wattsmart_lab.sunspec_server --host 127.0.0.1 --port {SIM_PORT}
DynamicUser=yes
Restart=on-failure
"""

GATEWAY_TEST_DROPIN = f"""\
# Test only: the battery simulator next to the gateway, and a short watchdog so the test is quick.
[Unit]
Wants={SIM_UNIT}
After={SIM_UNIT}

[Service]
WatchdogSec={WATCHDOG_S}s
RestartSec=1s
"""


@dataclass
class Box:
    """The booted container and what the tests learnt about it."""

    container: nspawn.Container
    root: Path
    uid: int
    gid: int
    groups: dict[str, int]
    wheel: str
    #: the run folder on the host (files/ is /mnt/test inside, wheels/ is /mnt/wheels)
    work: Path
    figures: dict[str, float] = field(default_factory=dict)

    def state(self) -> dict[str, str]:
        return self.container.show(
            UNIT,
            "ActiveState",
            "SubState",
            "Result",
            "MainPID",
            "NRestarts",
            "StatusText",
            "ExecMainCode",
            "ExecMainStatus",
        )

    def explain(self) -> str:
        return f"--- journal of {UNIT} ---\n{self.container.journal(UNIT)}"

    def battery(self, *args: str) -> dict[str, float]:
        out = self.container.sh(PYTHON, "/mnt/test/battery_probe.py", *args, "--port", str(SIM_PORT))
        result: dict[str, float] = json.loads(out.stdout)
        return result

    def wait_active(self, timeout: float = 60) -> float:
        def active() -> bool:
            state = self.state()
            if state["ActiveState"] == "failed":
                raise AssertionError(f"{UNIT} failed: {state}\n{self.explain()}")
            return state["ActiveState"] == "active"

        return nspawn.wait_until(active, timeout, f"{UNIT} to be active", self.explain)


def write_identity(folder: Path, uid: int, gid: int) -> None:
    """A throwaway CA and client certificate (ECDSA P-256, as 2030.5 uses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name | None,
        signer: ec.EllipticCurvePrivateKey,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("wattsmart test CA", ca_key, None, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    client = cert("wattsmart-test-gateway", key, ca.subject, ca_key)
    pem = serialization.Encoding.PEM
    files = {
        "ca.pem": ca.public_bytes(pem),
        "client.pem": client.public_bytes(pem),
        "client.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        path.chmod(0o600)
        os.chown(path, uid, gid)


#: the fleet's signing key for update bundles (made with the release tool, kept on the host)
FLEET_KEY_ID = "fleet-test"
TRUST_STORE = "/etc/wattsmart-gateway/ota-trust.json"


def release_tool(*args: str | Path) -> str:
    """`python -m wattsmart_release ...` on the host, as fleet operations run it; returns its output."""
    result = subprocess.run(
        [sys.executable, "-m", "wattsmart_release", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=nspawn.REPO,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise nspawn.HarnessError(f"release {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@contextlib.contextmanager
def booted_box() -> Iterator[Box]:
    """Build (debootstrap, cached), install and boot the box; power it off afterwards."""
    nspawn.require_tools()
    figures: dict[str, float] = {}
    work = nspawn.new_run_dir()

    started = time.monotonic()
    base = nspawn.base_tree()
    figures["base tree (s)"] = time.monotonic() - started
    started = time.monotonic()
    root = nspawn.copy_tree(base, work / "root")
    figures["copy tree (s)"] = time.monotonic() - started

    started = time.monotonic()
    wheel = nspawn.build_wheelhouse(work / "wheels")
    figures["wheelhouse (s)"] = time.monotonic() - started

    files = work / "files"
    files.mkdir()
    (files / "gateway.yaml").write_text(GATEWAY_YAML)
    shutil.copy(Path(__file__).with_name("battery_probe.py"), files / "battery_probe.py")
    shutil.copytree(LAB_SOURCE, files / "lab" / LAB_SOURCE.name, ignore=shutil.ignore_patterns("__pycache__"))
    # the fleet's key pair; boxes get only the public trust store (install.sh --trust)
    release_tool("keygen", "--key-id", FLEET_KEY_ID, "--out", work / "fleet")
    pub = work / "fleet" / f"{FLEET_KEY_ID}.pub"
    release_tool("trust", "--serial", "1", "--key", pub, "--out", files / "ota-trust.json")

    started = time.monotonic()
    install = nspawn.run_in_tree(
        root,
        [
            "/bin/sh",
            "/mnt/deploy/install.sh",
            "--wheelhouse",
            "/mnt/wheels",
            "--config",
            "/mnt/test/gateway.yaml",
            "--trust",
            "/mnt/test/ota-trust.json",
            f"/mnt/wheels/{wheel.name}",
        ],
        {DEPLOY: "/mnt/deploy", work / "wheels": "/mnt/wheels", files: "/mnt/test"},
    )
    figures["install.sh (s)"] = time.monotonic() - started
    assert install.returncode == 0, f"install.sh failed:\n{install.stdout}\n{install.stderr}"

    uid, gid = nspawn.passwd_ids(root, USER)
    groups = {g: nspawn.group_id(root, g) for g in ("dialout", "gpio")}
    write_identity(root / "var/lib/wattsmart-gateway/identity", uid, gid)
    system = root / "etc/systemd/system"
    (system / SIM_UNIT).write_text(SIM_SERVICE)
    (system / f"{UNIT}.d").mkdir(exist_ok=True)
    (system / f"{UNIT}.d" / "50-test.conf").write_text(GATEWAY_TEST_DROPIN)

    binds = {DEPLOY: "/mnt/deploy", work / "wheels": "/mnt/wheels", files: "/mnt/test"}
    container = nspawn.Container(root, work / "console.log", binds=binds)
    try:
        figures["boot (s)"] = container.boot()
        yield Box(container, root, uid, gid, groups, wheel.name, work, figures)
    finally:
        if container.leader:
            (work / "journal.txt").write_text(container.journal(lines=5000))
        container.poweroff()
        print(f"\nnspawn figures: {json.dumps({k: round(v, 1) for k, v in figures.items()})}")
        print(f"journal and console log of the container: {work}")
        if not os.environ.get("WSG_KEEP_TREE"):
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(work / "wheels", ignore_errors=True)
            shutil.rmtree(work / "source", ignore_errors=True)
