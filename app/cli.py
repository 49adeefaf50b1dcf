"""The `wattsmart-gateway` command: run the gateway, show the box's identity, check an installation."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from app import __version__
from app.config import DEFAULT_CONFIG, ConfigError, load_config
from app.identity import arguments as identity_arguments
from app.ota import arguments as ota_arguments


def log_format(environ: Mapping[str, str]) -> str:
    """Log line format: journald (JOURNAL_STREAM set) stamps lines itself; a run by hand gets a timestamp."""
    if environ.get("JOURNAL_STREAM"):
        return "%(levelname)s %(name)s: %(message)s"
    return "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wattsmart-gateway",
        description="IEEE 2030.5 gateway between a battery inverter and the Wattsmart DGBMS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the gateway (what the systemd service starts)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="configuration file (YAML)")

    ident = sub.add_parser("id", help="print the LFDI and SFDI the utility registers for this box")
    ident.add_argument("--cert", type=Path, help="client certificate (PEM or DER)")
    ident.add_argument("--config", type=Path, help="take the certificate from this configuration")
    ident.add_argument("--qr", action="store_true", help="also print SFDI/LFDI as a QR code for a phone")

    identity_arguments.add_parser(sub, DEFAULT_CONFIG)
    ota_arguments.add_parser(sub)

    check = sub.add_parser("check", help="the installer's self-test: one line per check, a fix for each ✗")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="configuration file (YAML)")

    validate = sub.add_parser("validate", help="check a configuration file and exit")
    validate.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="configuration file (YAML)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "id":
            return _cmd_id(args)
        if args.command == "validate":
            load_config(args.config)
            print(f"{args.config}: valid")
            return 0
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "identity":
            from app.identity import cli as identity_cli  # the commands, only when one runs

            return identity_cli.run(args)
        if args.command == "update":
            from app.ota import cli as ota_cli

            return ota_cli.run(args)
    except ConfigError as exc:
        print(f"wattsmart-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)  # argparse only lets known commands through


def _cmd_id(args: argparse.Namespace) -> int:
    from app.sep.identity import IdentityError, load_cert_identity

    cert: Path | None = args.cert
    if cert is None:
        if args.config is None:
            print("wattsmart-gateway id: give --cert FILE or --config FILE", file=sys.stderr)
            return 2
        cert = load_config(args.config).server.cert_file
    try:
        ident = load_cert_identity(cert)
    except IdentityError as exc:
        print(f"wattsmart-gateway id: {exc}", file=sys.stderr)
        return 1
    print(f"LFDI: {ident.lfdi}")
    print(f"SFDI: {ident.sfdi}")
    print(f"subject: {ident.subject}")
    print(f"issuer: {ident.issuer}")
    print(f"valid until: {ident.not_after.isoformat()}")
    if args.qr:
        from app.identity.qr import qr_payload, qr_text

        print(qr_text(qr_payload(ident)), end="")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        # the one line at the top of `systemctl status`; then the box stays up, not commissioned:
        # LED, button and status page say what is wrong, and a fixed file is taken up by itself
        print(f"wattsmart-gateway: configuration error: {exc}", file=sys.stderr, flush=True)
        logging.basicConfig(level=logging.INFO, format=log_format(os.environ))
        from app.commissioning import unconfigured

        return unconfigured.run(args.config, str(exc))
    logging.basicConfig(level=config.log_level, format=log_format(os.environ))
    from hal.modbus import quiet_library_logging

    quiet_library_logging()
    from app.memory import skip_mime_database

    skip_mime_database()
    load_http_stack()
    from app import gateway  # imported here: `id` and `validate` need none of it

    return gateway.run(config, args.config)


def load_http_stack() -> None:
    """Import aiohttp the way the box runs it: ~3 MB less resident than a plain import.

    - The system CA bundle is pointed at nothing while aiohttp is imported: it builds verifying
      SSLContexts from it at import time, the gateway never uses them (every connection has its
      own context trusting only the configured CA), and ~150 parsed roots would sit in memory.
    - frozenlist (aiohttp's signals) is its pure-Python version: the compiled one is C++ and maps
      libstdc++ and libgcc_s (~1.1 MB resident) for lists frozen a few times per session.

    The environment is restored after.
    """
    changes = {"SSL_CERT_FILE": os.devnull, "SSL_CERT_DIR": os.devnull, "FROZENLIST_NO_EXTENSIONS": "1"}
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        import aiohttp  # noqa: F401  # loaded here for its import-time contexts
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _cmd_check(args: argparse.Namespace) -> int:
    import asyncio

    from app.commissioning.check import DEFAULT_CHECKS, run_checks

    logging.basicConfig(level=logging.CRITICAL)  # the checklist says it all; no log noise
    results = asyncio.run(run_checks(args.config, DEFAULT_CHECKS))
    for result in results:
        print(result.line())
    failed = [r for r in results if r.ok is not True]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed")
    return 0 if not failed else 1
