"""Commands the updater runs (venv, pip, systemctl), behind a runner tests replace with a fake backend."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """Exit status and output of one command."""

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Whether the command succeeded."""
        return self.returncode == 0


class CommandRunner(Protocol):
    """Runs a command to completion."""

    def run(self, argv: Sequence[str], timeout_s: float = 600.0) -> CommandResult:
        """Run `argv` (no shell); never raises for a non-zero exit."""
        ...


class SubprocessRunner:
    """The real runner."""

    def run(self, argv: Sequence[str], timeout_s: float = 600.0) -> CommandResult:
        """Run `argv` with a timeout; a missing program or a timeout is a failed result, not an exception."""
        _LOGGER.debug("running %s", " ".join(argv))
        try:
            done = subprocess.run(  # noqa: S603 - argv comes from our own code, never from a bundle
                list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except FileNotFoundError:
            return CommandResult(127, "", f"{argv[0]}: not found")
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"{argv[0]}: timed out after {timeout_s:.0f} s")
        return CommandResult(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What systemd says about the gateway unit."""

    active_state: str
    sub_state: str
    n_restarts: int
    result: str

    def describe(self) -> str:
        """One line for logs and the state file."""
        return f"{self.active_state}/{self.sub_state}, result {self.result}, {self.n_restarts} restarts"


def parse_show(text: str) -> ServiceStatus:
    """Parse `systemctl show -p ActiveState -p SubState -p NRestarts -p Result` output."""
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        restarts = int(props.get("NRestarts", "0") or 0)
    except ValueError:
        restarts = 0
    active, sub = props.get("ActiveState", "unknown"), props.get("SubState", "unknown")
    return ServiceStatus(active, sub, restarts, props.get("Result", ""))


class Service:
    """The gateway's systemd unit, driven through a CommandRunner."""

    def __init__(self, runner: CommandRunner, unit: str, systemctl: str = "systemctl") -> None:
        self._runner, self.unit, self._systemctl = runner, unit, systemctl

    def restart(self) -> None:
        """Ask systemd to restart the unit without waiting: the updater's trial loop does the waiting."""
        # after a crash loop the unit is start-limit-hit and refuses starts until the failure is reset
        self._runner.run([self._systemctl, "reset-failed", self.unit], timeout_s=60)
        # --no-block: a Type=notify restart would otherwise block until READY or TimeoutStartSec
        result = self._runner.run([self._systemctl, "restart", "--no-block", self.unit], timeout_s=60)
        if not result.ok:
            _LOGGER.error("systemctl restart %s failed: %s", self.unit, result.stderr.strip())

    def status(self) -> ServiceStatus:
        """ActiveState, SubState, NRestarts and Result of the unit."""
        props = ["ActiveState", "SubState", "NRestarts", "Result"]
        argv = [self._systemctl, "show", self.unit] + [f"--property={p}" for p in props]
        result = self._runner.run(argv, timeout_s=30)
        if not result.ok:
            return ServiceStatus("unknown", "unknown", 0, result.stderr.strip())
        return parse_show(result.stdout)
