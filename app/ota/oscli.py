"""`wattsmart-gateway update os-…`: OS updates (RAUC A/B slots) beside the app update commands."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

from app.ota.machine import UpdateState, summary, to_json
from app.ota.osupdate import OsPaths, OsUpdater
from app.ota.settings import OtaSettings
from app.ota.state import control_in_force

_LOGGER = logging.getLogger(__name__)
#: run at every boot and from RAUC: they must work even when the configuration does not load
CONFIG_OPTIONAL = frozenset({"os-boot", "os-carry"})


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add the os-* subcommands (`common` holds --config and the paths)."""
    os_common = argparse.ArgumentParser(add_help=False, parents=[common])
    os_common.add_argument(
        "--os-state-dir", type=Path, help="OS update state (default on the boot partition)"
    )
    os_common.add_argument("--rauc", help="rauc program")
    install = sub.add_parser("os-install", parents=[os_common], help="install an OS bundle (RAUC) and reboot")
    install.add_argument("bundle", type=Path)
    install.add_argument("--no-reboot", action="store_true", help="write the slot; reboot later by hand")
    boot = sub.add_parser(
        "os-boot", parents=[os_common], help="at start-up: finish, watch and commit an OS trial"
    )
    boot.add_argument(
        "--lfdi", help="this box's LFDI for the outcome report (default: the configured certificate)"
    )
    sub.add_parser("os-status", parents=[os_common], help="show the OS update state as JSON")
    rollback = sub.add_parser("os-rollback", parents=[os_common], help="roll the OS on trial back")
    rollback.add_argument("--reason", default="OS rollback requested by an operator")
    carry = sub.add_parser(
        "os-carry", parents=[os_common], help="(RAUC post-install) carry this box into a slot"
    )
    carry.add_argument("--new-root", type=Path, required=True, help="where the new slot is mounted")


def run(args: argparse.Namespace, settings: OtaSettings, lfdi: Callable[[], str | None]) -> int:
    """Run one os-* command (`lfdi`: this box's, for reports); 0 done, 1 failed or rolled back, 2 refused."""
    command = args.update_command
    if command == "os-carry":
        from app.ota.oscarry import carry

        carried = carry(args.new_root)
        print("carried: " + (", ".join(carried) or "nothing"))
        return 0
    paths = OsPaths()
    if args.os_state_dir is not None:
        paths = OsPaths(state_dir=args.os_state_dir, rauc=args.rauc or paths.rauc)
    elif args.rauc:
        paths = OsPaths(rauc=args.rauc)
    updater = OsUpdater(settings, paths, control_in_force=lambda: control_in_force(settings.control_flag))
    if command == "os-install":
        state = updater.install(args.bundle, reboot=not args.no_reboot)
        return _report(state)
    if command == "os-boot":
        state = updater.boot()
        if settings.report_url is not None and not state.updating:
            updater.report(args.lfdi or lfdi())
        _report(state)
        return 0  # a rolled-back update is news, not a failed boot unit
    if command == "os-status":
        status = {**to_json(updater.state), "running": updater.running(), "updating": updater.state.updating}
        print(json.dumps(status, indent=1, sort_keys=True))
        return 0
    if command == "os-rollback":
        return _report(updater.rollback(args.reason))
    raise AssertionError(command)


def _report(state: UpdateState) -> int:
    line, status = summary(state, "OS update")
    print(line)
    return status
