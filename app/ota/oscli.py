"""`wattsmart-gateway update os-…`: OS updates (RAUC A/B slots) beside the app update commands."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable

from app.ota.machine import UpdateState, summary, to_json
from app.ota.settings import OtaSettings
from app.ota.state import control_in_force

_LOGGER = logging.getLogger(__name__)
#: run at every boot and from RAUC: they must work even when the configuration does not load
CONFIG_OPTIONAL = frozenset({"os-boot", "os-carry"})


def run(args: argparse.Namespace, settings: OtaSettings, lfdi: Callable[[], str | None]) -> int:
    """Run one os-* command (`lfdi`: this box's, for reports); 0 done, 1 failed or rolled back, 2 refused."""
    command = args.update_command
    if command == "os-carry":
        from app.ota.oscarry import carry

        carried = carry(args.new_root)
        print("carried: " + (", ".join(carried) or "nothing"))
        return 0
    # the OS updater brings bundles, keys and `cryptography`: loaded only when an os-* command runs,
    # never by building the CLI that `wattsmart-gateway run` parses its arguments with
    from app.ota.osupdate import OsPaths, OsUpdater

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
