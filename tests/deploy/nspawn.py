"""A real systemd for the deploy tests: a cached minimal Debian tree, booted with systemd-nspawn.

systemd is not PID 1 on the build machines, so `systemctl start` cannot be tried there. Instead:

1. `base_tree()` builds a minimal Debian tree with debootstrap (systemd, dbus, python3, python3-venv)
   from the mirror this machine's apt uses, and caches it under CACHE_ROOT; it is rebuilt only when
   its inputs (suite, mirror, package list, debootstrap version, FORMAT) change.
2. `build_wheelhouse()` builds the gateway's wheel from this checkout and every dependency's wheel on
   the host (with the host's pip configuration), so the container installs offline.
3. `run_in_tree()` runs a command in the tree without booting it (deploy/install.sh runs this way,
   as it would in an image build).
4. `Container` boots the tree (`systemd-nspawn --register=no --keep-unit -b --private-network`; the
   first two because there is no host systemd/D-Bus, the last so nothing inside reaches out) and
   runs commands in it with nsenter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_ROOT = Path(os.environ.get("WSG_TEST_CACHE", "/var/cache/wattsmart-gateway-test"))
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "procps")
#: bump to force every cached base tree to be rebuilt
FORMAT = 1
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class HarnessError(RuntimeError):
    """The container could not be built or booted (as opposed to a failed expectation)."""


def require_tools() -> None:
    """Fail with the fix when the host lacks what the slow suite needs."""
    missing = [t for t in ("debootstrap", "systemd-nspawn", "nsenter") if shutil.which(t) is None]
    if missing:
        raise HarnessError(
            f"missing {', '.join(missing)}: apt-get install debootstrap systemd-container util-linux"
        )
    if os.geteuid() != 0:
        raise HarnessError("the systemd-nspawn suite needs root (debootstrap, nspawn)")


def host_codename() -> str:
    """The host's Debian suite: the tree matches it, so host-built wheels fit its Python."""
    text = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not match:
        raise HarnessError("cannot tell the Debian suite from /etc/os-release")
    return match.group(1)


def debian_mirror(codename: str) -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources); WSG_DEBIAN_MIRROR overrides."""
    if os.environ.get("WSG_DEBIAN_MIRROR"):
        return os.environ["WSG_DEBIAN_MIRROR"]
    sources = Path("/etc/apt")
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                suites = fields.get("Suites", "").split()
                if codename in suites and "main" in fields.get("Components", "").split():
                    return fields.get("URIs", "").split()[0]
        elif path.suffix == ".list":
            for line in text.splitlines():
                match = re.match(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{codename}\s+.*\bmain\b", line)
                if match:
                    return match.group(1)
    return DEFAULT_MIRROR


def _debootstrap_version() -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "debootstrap"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_tree(log: Callable[[str], None] = print) -> Path:
    """The cached minimal Debian tree for this host's suite; built with debootstrap if needed."""
    codename = host_codename()
    inputs = {
        "format": FORMAT,
        "suite": codename,
        "mirror": debian_mirror(codename),
        "packages": sorted(PACKAGES),
        "debootstrap": _debootstrap_version(),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    tree = CACHE_ROOT / f"base-{codename}-{key}"
    if tree.is_dir():
        return tree
    with _locked(CACHE_ROOT / "lock"):
        if tree.is_dir():
            return tree
        build = CACHE_ROOT / f".build-{key}"
        shutil.rmtree(build, ignore_errors=True)
        log(f"debootstrap {codename} from {inputs['mirror']} into {build} (cached afterwards)")
        started = time.monotonic()
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                codename,
                str(build),
                str(inputs["mirror"]),
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise HarnessError(f"debootstrap failed ({result.returncode}):\n{tail}")
        for deb in (build / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        (build / "etc/hostname").write_text("wattsmart-test\n")
        (build / "inputs.json").write_text(json.dumps(inputs, indent=1) + "\n")
        build.rename(tree)
        log(f"base tree ready in {time.monotonic() - started:.0f} s: {tree}")
        for old in CACHE_ROOT.glob("base-*"):
            if old != tree:
                shutil.rmtree(old, ignore_errors=True)
    return tree


def new_run_dir(keep: int = 3) -> Path:
    """A private folder for one test session under CACHE_ROOT/runs (not pytest's tmp_path: other
    pytest sessions on the same machine prune those, which must not happen to a booted tree).
    Only the newest `keep` runs' logs are kept."""
    runs = CACHE_ROOT / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for old in sorted(runs.iterdir())[: -(keep - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    work = runs / f"{stamp}-{os.getpid()}"
    work.mkdir()
    return work


def copy_tree(source: Path, dest: Path) -> Path:
    """A private, writable copy of the base tree for one test session."""
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(dest)], check=True, timeout=300)
    return dest


def build_wheelhouse(dest: Path) -> Path:
    """Wheels for the gateway (built from this checkout) and all its dependencies; returns the gateway's."""
    source = _copy_source(dest.parent / "source")
    wheels = _pip_wheel(source, dest)
    return wheels[-1]


def build_gateway_wheel(dest: Path, version: str, replace: dict[str, str] | None = None) -> Path:
    """The gateway's wheel alone (no dependencies) as `version`, built from a copy of the checkout in
    which `replace` swaps whole files (path relative to the checkout -> new text): the releases an
    update test installs. The version is set in pyproject.toml and app/__init__.py."""
    source = _copy_source(dest.parent / f"source-{version}")
    pyproject = source / "pyproject.toml"
    text, found = re.subn(
        r'(?m)^version = "[^"]*"$', f'version = "{version}"', pyproject.read_text(), count=1
    )
    init = source / "app" / "__init__.py"
    code, found_too = re.subn(r'(?m)^__version__ = "[^"]*"$', f'__version__ = "{version}"', init.read_text())
    if not (found and found_too):
        raise HarnessError("cannot set the version: pyproject.toml or app/__init__.py changed shape")
    pyproject.write_text(text)
    init.write_text(code)
    for name, content in (replace or {}).items():
        (source / name).write_text(content)
    wheels = [
        w for w in _pip_wheel(source, dest, "--no-deps") if w.name.startswith(f"wattsmart_gateway-{version}-")
    ]
    shutil.rmtree(source, ignore_errors=True)
    if not wheels:
        raise HarnessError(f"no wattsmart_gateway-{version} wheel in {dest}")
    return wheels[0]


def _copy_source(source: Path) -> Path:
    """The sources a wheel is built from, copied: the build writes nothing into the checkout."""
    checkout = Path(os.environ.get("WSG_GATEWAY_SOURCE", REPO))  # another checkout, to try it
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("app", "hal"):
        shutil.copytree(checkout / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (checkout / name).exists():
            shutil.copy(checkout / name, source / name)
    return source


def _pip_wheel(source: Path, dest: Path, *options: str) -> list[Path]:
    pip = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "pip"
    if not pip.exists():
        pip = REPO / ".venv" / "bin" / "pip"
    result = subprocess.run(
        [str(pip), "wheel", "--quiet", *options, "--wheel-dir", str(dest), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wheels = sorted(dest.glob("wattsmart_gateway-*.whl"))
    if result.returncode != 0 or not wheels:
        raise HarnessError(f"pip wheel failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return wheels


def _nspawn_base(root: Path) -> list[str]:
    return [
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--private-network",
        f"--directory={root}",
    ]


def run_in_tree(
    root: Path, command: Sequence[str], binds: dict[Path, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command inside the tree without booting it (like an image build step)."""
    args = _nspawn_base(root) + [f"--bind-ro={host}:{inside}" for host, inside in binds.items()]
    return subprocess.run(
        [*args, "--", *command], capture_output=True, text=True, timeout=timeout, check=False
    )


def passwd_ids(root: Path, user: str) -> tuple[int, int]:
    """uid and gid of `user` in the tree."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise HarnessError(f"no user {user} in {root}/etc/passwd")


def group_id(root: Path, group: str) -> int:
    """gid of `group` in the tree."""
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return int(fields[2])
    raise HarnessError(f"no group {group} in {root}/etc/group")


class Container:
    """The tree booted under its own systemd; commands run inside through nsenter."""

    def __init__(self, root: Path, console_log: Path, binds: dict[Path, str] | None = None) -> None:
        self.root = root
        self.console_log = console_log
        self.binds = binds or {}
        self._proc: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def boot(self, timeout: float = 90) -> float:
        """Boot and wait until the system is up; returns the seconds it took."""
        started = time.monotonic()
        args = _nspawn_base(self.root) + [f"--bind-ro={h}:{i}" for h, i in self.binds.items()]
        with self.console_log.open("wb") as console:
            self._proc = subprocess.Popen(
                [*args, "--boot", "--console=pipe"],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
            )
        self.leader = self._wait(self._find_leader, timeout, "the container's PID 1")
        self._wait(self._booted, timeout - (time.monotonic() - started), "the container to finish booting")
        return time.monotonic() - started

    def _find_leader(self) -> int:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise HarnessError(f"systemd-nspawn exited ({self._proc.returncode}): {self._console_tail()}")
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                text = status.read_text()
                ppid = re.search(r"^PPid:\s+(\d+)$", text, re.M)
                nspid = re.search(r"^NSpid:\s+(.*)$", text, re.M)
                ours = ppid and int(ppid.group(1)) == self._proc.pid
                # PID 1 of the container once it is systemd: before the exec it is nspawn's own
                # child still setting up mounts, where `systemctl` would report "offline"
                execd = re.search(r"^Name:\s+systemd$", text, re.M)
                if ours and execd and nspid and nspid.group(1).split()[-1] == "1":
                    return int(status.parent.name)
        return 0

    def _booted(self) -> bool:
        state = self.sh("systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return True
        if state in ("maintenance", "stopping"):  # "offline" may still be the very start: wait
            raise HarnessError(f"container system state {state!r}: {self._console_tail()}")
        return False

    def _wait(self, probe: Callable[[], int | bool], timeout: float, what: str) -> int:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return int(value)
            if time.monotonic() > deadline:
                raise HarnessError(f"timed out waiting for {what}: {self._console_tail()}")
            time.sleep(0.2)

    def _console_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-20:])
        return ""

    def sh(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the booted container (all its namespaces, as root)."""
        if not self.leader:
            raise HarnessError("the container is not running")
        result = subprocess.run(
            ["nsenter", f"--target={self.leader}", "--all", "--", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show` properties of a unit."""
        out = self.sh("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str | None = None, lines: int = 80) -> str:
        """The tail of this boot's journal (of one unit, or all)."""
        args = ["journalctl", "--no-pager", "--boot", f"--lines={lines}", "--output=short-monotonic"]
        if unit:
            args.append(f"--unit={unit}")
        return self.sh(*args, check=False).stdout

    def poweroff(self, timeout: float = 30) -> None:
        """Shut the container down cleanly; kill it if it does not go."""
        if self._proc is None:
            return
        if self._proc.poll() is None and self.leader:
            self.sh("systemctl", "poweroff", "--no-block", check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        if self._proc.poll() is None:
            # killing nspawn alone would leave the container's PID 1 (and so all of it) running
            if self.leader:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.leader, signal.SIGKILL)
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)
        self._proc = None
        self.leader = 0


def wait_until(
    probe: Callable[[], bool], timeout: float, what: str, explain: Callable[[], str] = lambda: ""
) -> float:
    """Poll `probe` every 0.1 s; return the seconds it took, or fail naming `what`."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")
        time.sleep(0.1)
    return time.monotonic() - started
