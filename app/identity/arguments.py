"""The `identity` command group's arguments: argparse only, so building the CLI loads no identity code.

`wattsmart-gateway run` builds the whole CLI to parse its arguments; the commands themselves
(`app.identity.cli`) are imported when one of them runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_config: Path) -> None:
    """Add the `identity` command group to the top-level parser's subcommands."""
    group = sub.add_parser("identity", help="the box's key and 2030.5 certificate: init, install, status")
    cmds = group.add_subparsers(dest="identity_command", required=True, metavar="ACTION")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=default_config, help="configuration file (YAML)")

    init = cmds.add_parser("init", help="create a key on the box and a CSR for the 2030.5 CA")
    config_arg(init)
    init.add_argument("--subject", help='RFC 4514 subject ("" for none; default CN=wattsmart-gateway)')
    init.add_argument(
        "--hardware-module", metavar="OID:SERIAL", help="ask for a hardwareModuleName subjectAltName"
    )
    init.add_argument("--policy", action="append", default=[], metavar="OID", help="certificate policy")
    init.add_argument("--client-auth", action="store_true", help="ask for extendedKeyUsage clientAuth")
    init.add_argument("--force", action="store_true", help="replace a prepared key still without certificate")

    install = cmds.add_parser("install", help="check and install the certificate the CA signed")
    config_arg(install)
    install.add_argument("cert", type=Path, help="the signed certificate (PEM or DER)")
    install.add_argument("chain", type=Path, nargs="?", help="the CA's intermediate certificates (PEM)")

    status = cmds.add_parser("status", help="show the identity in force, rotation and expiry")
    config_arg(status)

    back = cmds.add_parser("fall-back", help="return to the previous identity while a new one is on trial")
    config_arg(back)
