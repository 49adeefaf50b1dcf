"""The `update` command group's arguments (app and OS updates): argparse only.

`wattsmart-gateway run` builds the whole CLI to parse its arguments; the update commands
(`app.ota.cli`, `app.ota.oscli`, and through them bundles, keys and `cryptography`) are imported
only when one of them runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.config import DEFAULT_CONFIG


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `update` command group to the gateway's CLI."""
    update = sub.add_parser("update", help="install, inspect, commit or roll back a software update")
    add_commands(update.add_subparsers(dest="update_command", required=True, metavar="UPDATE_COMMAND"))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the update subcommands to `sub`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        help=f"gateway configuration, for its `ota:` section (default {DEFAULT_CONFIG} if it exists;"
        " rollback and recover read none unless given one)",
    )
    common.add_argument("--root", type=Path, help="release root (default /opt/wattsmart-gateway)")
    common.add_argument("--state-dir", type=Path, help="update state folder")
    common.add_argument("--trust-store", type=Path, help="trusted fleet keys (JSON)")
    common.add_argument("--service", help="the gateway's systemd unit")
    common.add_argument("--systemctl", help="systemctl program (a fake one in the lab)")

    install = sub.add_parser("install", parents=[common], help="verify and install a bundle")
    install.add_argument("bundle", type=Path)
    install.add_argument("--force", action="store_true", help="allow a downgrade")
    install.add_argument("--no-wait", action="store_true", help="switch and return; the updater commits")
    sub.add_parser("status", parents=[common], help="show the update state as JSON")
    sub.add_parser("commit", parents=[common], help="commit the release on trial now")
    rollback = sub.add_parser("rollback", parents=[common], help="roll the release on trial back")
    rollback.add_argument("--reason", default="rollback requested by an operator")
    rollback.add_argument(
        "--crash-loop", action="store_true", help="called by systemd OnFailure= (the rollback unit)"
    )
    sub.add_parser("recover", parents=[common], help="at start-up: finish or undo an interrupted update")
    poll = sub.add_parser("poll", parents=[common], help="poll the fleet manifest (the updater service)")
    poll.add_argument("--lfdi", help="this box's LFDI (default: from the configured client certificate)")
    poll.add_argument("--once", action="store_true", help="poll once and exit")
    poll.add_argument("--manifest-url", help="the fleet's signed manifest (overrides the configuration)")
    poll.add_argument("--report-url", help="where to POST update outcomes")
    add_os_commands(sub, common)


def add_os_commands(
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
