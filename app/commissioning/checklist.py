"""What the running box still needs, re-read when asked: the gateway drives the battery only when empty."""

from __future__ import annotations

import logging
from pathlib import Path

from app.commissioning.missing import Missing, unusable_inverter, what_is_missing
from app.config import DEFAULT_CONFIG, Config
from app.identity import IdentityStore
from app.identity.trial import CertificateTrial

_LOGGER = logging.getLogger(__name__)


class Checklist:
    """The `missing` items of one box: its configuration, identity and certificate, and its inverter."""

    def __init__(
        self,
        config: Config,
        identity: IdentityStore,
        certificate: CertificateTrial,
        config_path: Path | None = None,
    ) -> None:
        self._config = config
        self._identity = identity
        self._certificate = certificate
        #: the file `config` came from (also watched while something is missing)
        self._config_path = config_path
        #: what the box still needs before it may drive the battery (empty: commissioned)
        self.missing: list[Missing] = []
        #: an inverter that cannot work as configured (named recovery: the box waits for a fix)
        self._unusable_inverter: Missing | None = None

    def check(self) -> list[Missing]:
        """Re-read what the box still needs (cheap: a few stat calls)."""
        extra = () if self._config_path is None else (self._config_path,)
        unusable = [self._unusable_inverter] if self._unusable_inverter is not None else []
        self.missing = [
            *what_is_missing(self._config, self._identity, self._certificate.problem, *extra),
            *unusable,
        ]
        return self.missing

    def commissioned_now(self) -> bool:
        """Whether the box has a certificate and everything else it needs now (in a thread)."""
        return self._certificate.load() is not None and not self.check()

    def inverter_unusable(self, error: str) -> None:
        """The inverter cannot work as configured (`error` says why): missing until the file is fixed."""
        self._unusable_inverter = unusable_inverter(self._config_path or DEFAULT_CONFIG, error)
        self.missing.append(self._unusable_inverter)
        _LOGGER.error("not commissioned: inverter: %s", self._unusable_inverter.line())
