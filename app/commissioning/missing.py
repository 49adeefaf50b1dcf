"""What a box still needs before it may drive the battery, and the command that fixes each.

A box is *not commissioned* while its configuration is unusable, still points at the example's
utility, lacks the utility's CA, or has no client certificate. It then stays up (LED, button,
status page) and never drives the battery; the status page lists exactly what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.config import DEFAULT_CONFIG, Config
from app.identity import IdentityStore
from app.sep.identity import CertIdentity

_LOGGER = logging.getLogger(__name__)

#: hosts that only ever appear in examples (RFC 2606, and deploy/gateway.example.yaml's)
PLACEHOLDER_DOMAINS = ("example", "example.com", "example.net", "example.org", "invalid")
SECTION = "not commissioned"


@dataclass(frozen=True)
class Missing:
    """One thing missing: what (a config key or "certificate"), why, and the fix."""

    what: str
    problem: str
    fix: str

    def __post_init__(self) -> None:
        if not (self.what and self.problem and self.fix):
            raise ValueError("a missing item needs what, problem and fix")

    def line(self) -> str:
        """The status page's line: the problem, then the fix."""
        return f"{self.problem} — fix: {self.fix}"


def _config_arg(path: Path) -> str:
    return "" if path == DEFAULT_CONFIG else f" --config {path}"


def unusable_config(path: Path, error: str) -> Missing:
    """The configuration file cannot be used at all."""
    return Missing(
        "configuration",
        error,
        f"write {path} (the complete example is deploy/gateway.example.yaml), check it with "
        f"`wattsmart-gateway validate{_config_arg(path)}`; the gateway starts on it by itself",
    )


def unusable_inverter(path: Path, error: str) -> Missing:
    """The inverter cannot be driven as configured (a profile that cannot work): retrying cannot help."""
    return Missing(
        "inverter",
        error,
        f"fix the inverter section of {path} or the profile file it names, check it with "
        f"`wattsmart-gateway check{_config_arg(path)}`; the gateway starts again on a changed "
        "configuration (after a fix to the profile file alone: systemctl restart wattsmart-gateway)",
    )


def placeholder_url(url: str) -> bool:
    """Whether `url` still points at an example host."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in PLACEHOLDER_DOMAINS)


def what_is_missing(
    config: Config,
    identity: IdentityStore,
    identity_problem: str | None,
    config_path: Path = DEFAULT_CONFIG,
) -> list[Missing]:
    """Everything the box still needs, in the order an installer fixes it (empty: commissioned)."""
    out: list[Missing] = []
    server = config.server
    if placeholder_url(server.dcap_url):
        out.append(
            Missing(
                "server.dcap_url",
                f"still the example's {server.dcap_url}",
                f"set server.dcap_url in {config_path} to the DeviceCapability URL the utility gives you",
            )
        )
    if not server.ca_file.is_file():
        out.append(
            Missing(
                "server.ca_file",
                f"{server.ca_file} does not exist",
                f"copy the utility's 2030.5 root CA certificate (PEM) to {server.ca_file}",
            )
        )
    if identity_problem is not None:
        pending = identity.pending() if identity.managed else None
        arg = _config_arg(config_path)
        if pending is not None:
            out.append(
                Missing(
                    "certificate",
                    f"no client certificate yet; this box's key and CSR are ready ({pending.csr})",
                    "have the utility's CA sign the CSR, then "
                    f"`wattsmart-gateway identity install{arg} CERT [CHAIN]`",
                )
            )
        else:
            out.append(
                Missing(
                    "certificate",
                    identity_problem,
                    f"`wattsmart-gateway identity init{arg}`, have the utility's CA sign the CSR, then "
                    f"`wattsmart-gateway identity install{arg} CERT [CHAIN]`",
                )
            )
    return out


def status_section(missing: list[Missing], identity: CertIdentity | None) -> dict[str, Any]:
    """The status page's "not commissioned" section: each missing item with its fix, and who we are
    (the page draws the QR code of the LFDI/SFDI)."""
    section: dict[str, Any] = {m.what: m.line() for m in missing}
    if identity is not None:
        section["LFDI"] = identity.lfdi
        section["SFDI"] = identity.sfdi
    else:
        section["LFDI"] = "from the certificate, once it is installed (2030.5: a hash of the certificate)"
    section["then"] = "the gateway takes up the certificate, the CA and a corrected configuration by itself"
    return section
