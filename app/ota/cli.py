"""`wattsmart-gateway update …` and `python -m app.ota …`: install, status, commit, rollback, poll."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import DEFAULT_CONFIG, ConfigError, load_config
from app.ota import arguments
from app.ota.errors import BundleRejected, NothingToDo, OtaError, UpdateBusy
from app.ota.machine import Phase, UpdateState, summary, to_json
from app.ota.settings import LEGACY_STATE_DIR, STATE_DIR, OtaSettings
from app.ota.state import control_in_force, read_gateway_file

if TYPE_CHECKING:
    # the updater brings bundles, keys and `cryptography`: loaded only when an update command runs
    from app.ota.updater import Updater

_LOGGER = logging.getLogger(__name__)
#: entries that never read a configuration unless given one: a config a newer release wrote must not
#: stop the known-good release from rolling back or recovering (they need only the default paths)
CONFIG_FREE = frozenset({"rollback", "recover", "os-carry"})
#: read-only or start-up entries that go on with the built-in settings when the configuration does not load
DEFAULTS_ON_ERROR = frozenset({"status", "os-status", "os-boot"})
MAX_CERT_BYTES = 1 << 16


def config_path(args: argparse.Namespace, default: Path = DEFAULT_CONFIG) -> Path | None:
    """The configuration a command reads: `--config`, else `default` when it exists (none for CONFIG_FREE)."""
    given: Path | None = args.config
    if given is not None or args.update_command in CONFIG_FREE:
        return given
    return default if default.is_file() else None


def settings_from_args(args: argparse.Namespace) -> OtaSettings:
    """Defaults, then the config file's `ota:` section when it has one, then command-line options."""
    settings = OtaSettings()
    if args.config is not None:
        config = load_config(args.config)
        found = getattr(config, "ota", None)
        settings = found if isinstance(found, OtaSettings) else settings
    changes = {
        "root": args.root,
        "state_dir": args.state_dir,
        "trust_store": args.trust_store,
        "service": args.service,
        "systemctl": args.systemctl,
        "manifest_url": getattr(args, "manifest_url", None),
        "report_url": getattr(args, "report_url", None),
    }
    return dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})


def legacy_state_dir(settings: OtaSettings, legacy: Path = LEGACY_STATE_DIR) -> OtaSettings:
    """On a box whose units predate root's own state folder, keep using the old one (and say why).

    An over-the-air update replaces the Python release, not the systemd units: until deploy/install.sh
    runs again (it makes /var/lib/wattsmart-gateway-ota and removes the old folder), the units only
    let the updater write the old folder, and the gateway's user can still tamper with it.
    """
    if settings.state_dir != STATE_DIR or settings.state_dir.exists() or not legacy.is_dir():
        return settings
    _LOGGER.error(
        "%s is missing: using the old %s, which the gateway's user can replace; run deploy/install.sh"
        " again to move the update state where only root writes",
        settings.state_dir,
        legacy,
    )
    return dataclasses.replace(settings, state_dir=legacy)


def run(
    args: argparse.Namespace,
    updater_factory: Callable[[OtaSettings], Updater] | None = None,
    default_config: Path = DEFAULT_CONFIG,
) -> int:
    """Run one update subcommand; returns the exit status (0 done, 1 failed or rolled back, 2 refused)."""
    implicit = args.config is None
    args.config = config_path(args, default_config)
    try:
        settings = settings_from_args(args)
    except (ValueError, ConfigError) as exc:
        if not (implicit and args.update_command in DEFAULTS_ON_ERROR):
            hint = " (the default configuration; --config FILE reads another)" if implicit else ""
            print(f"wattsmart-gateway update: {exc}{hint}", file=sys.stderr)
            return 2
        # status only reads, os-boot must finish a trial at every boot: the built-in settings, not nothing
        print(f"wattsmart-gateway update: {exc}; using the built-in settings", file=sys.stderr)
        args.config = None
        settings = settings_from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = legacy_state_dir(settings)
    from app.ota.updater import Updater

    factory = updater_factory or (
        lambda s: Updater(s, control_in_force=lambda: control_in_force(s.control_flag))
    )
    updater = factory(settings)
    try:
        if args.update_command.startswith("os-"):
            from app.ota import oscli

            return oscli.run(args, settings, lambda: _lfdi_from_config(args.config))
        return _dispatch(args, updater)
    except NothingToDo as exc:
        print(f"wattsmart-gateway update: {exc}")
        return 0
    except (BundleRejected, UpdateBusy) as exc:
        print(f"wattsmart-gateway update: refused: {exc}", file=sys.stderr)
        if isinstance(exc, UpdateBusy) and args.update_command in ("commit", "rollback"):
            print(
                "the trial is being watched (by the updater service, or an `update install` still waiting)"
                " and ends by itself. To decide now, stop the watcher (systemctl stop"
                " wattsmart-gateway-updater.service, or Ctrl-C the install), run this again, then start"
                " the updater again.",
                file=sys.stderr,
            )
        return 2
    except OtaError as exc:
        print(f"wattsmart-gateway update: failed: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, updater: Updater) -> int:
    command = args.update_command
    if command == "install":
        if updater.control_in_force():
            wait_h = updater.settings.max_control_wait_s / 3600
            print(f"a grid-control event is in force: the update waits until it ends (at most {wait_h:g} h)")
        state = updater.install(args.bundle, force=args.force, watch=not args.no_wait)
        return _report(state)
    if command == "status":
        status = {**to_json(updater.state), "running": updater.running_version()}
        status["previous"] = updater.releases.linked(updater.releases.previous)
        status["updating"] = updater.updating
        floor = updater.security_floor()
        status["security_floor"] = str(floor) if floor is not None else None
        print(json.dumps(status, indent=1, sort_keys=True))
        return 0
    if command == "commit":
        return _report(updater.commit())
    if command == "rollback":
        state = updater.rollback(args.reason, crash_loop=args.crash_loop)
        _report(state)
        return 0  # the rollback itself succeeded (the unit must not show as failed)
    if command == "recover":
        return _report(updater.recover())
    if command == "poll":
        return _poll(args, updater)
    raise AssertionError(command)


def _report(state: UpdateState) -> int:
    line, status = summary(state, "update")
    print(line)
    return status


def _poll(args: argparse.Namespace, updater: Updater) -> int:
    from app.ota.fleet_poller import FleetPoller

    lfdi = args.lfdi or _lfdi_from_config(args.config)
    if lfdi is None:
        # not commissioned yet: still finish an update a reboot interrupted, then let systemd retry later
        if updater.recover().phase is Phase.TRIAL:
            updater.resume()
        print(
            "wattsmart-gateway update poll: no LFDI (give --lfdi, or --config with a client certificate)",
            file=sys.stderr,
        )
        return 2
    poller = FleetPoller(updater, lfdi)
    if args.once:
        print(asyncio.run(poller.poll_once()))
        return 0
    asyncio.run(poller.run_forever())
    return 0


def _lfdi_from_config(config: Path | None) -> str | None:
    """The LFDI of the configured client certificate, or None when there is none (yet).

    The certificate is the gateway user's file: read non-blocking and size-limited, so that a
    compromised gateway cannot hang or swell root's updater through it.
    """
    if config is None:
        return None
    from app.sep.certificate import CertificateFormatError, load_certificate
    from app.sep.identity import lfdi_from_der

    try:
        path = load_config(config).server.cert_file
        data, _ = read_gateway_file(path, MAX_CERT_BYTES)
        cert = load_certificate(data)
    except (OSError, ValueError, CertificateFormatError) as exc:
        _LOGGER.warning("no client certificate to take the LFDI from: %s", exc)
        return None
    return lfdi_from_der(cert.der)


def main(
    argv: list[str] | None = None,
    updater_factory: Callable[[OtaSettings], Updater] | None = None,
    default_config: Path = DEFAULT_CONFIG,
) -> int:
    """`python -m app.ota`: the same commands without the gateway's CLI (used by the systemd units)."""
    parser = argparse.ArgumentParser(prog="python -m app.ota", description="Gateway updates.")
    arguments.add_commands(parser.add_subparsers(dest="update_command", required=True, metavar="COMMAND"))
    return run(parser.parse_args(argv), updater_factory, default_config)
