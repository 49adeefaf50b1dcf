"""The client certificate the gateway's session runs on, and its trial against the server.

A certificate newly in force is *on trial* until the server accepts it: once the server lists our
EndDevice and the session reports no problem it is confirmed (the previous one retired); when the
server refuses it (a problem of kind CERTIFICATE or NOT_REGISTERED) the previous one comes back.
Either way, another certificate in force means a restart: LFDI, mirrors and responses then agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from app.config import ServerConfig
from app.health import Health, Kind
from app.identity.errors import NoIdentity
from app.identity.store import IdentityFiles, IdentityStore
from app.sep.identity import CertIdentity, IdentityError, load_cert_identity
from app.store.files import file_stamp

_LOGGER = logging.getLogger(__name__)

#: how often the session checks for a newly installed certificate and confirms one on trial
CHECK_S = 30.0
#: server problems that mean the server refuses this certificate (not that it is away)
REFUSED = frozenset({Kind.CERTIFICATE, Kind.NOT_REGISTERED})


class CertificateTrial:
    """The certificate in force (`lfdi`, `cert`, or the `problem` why there is none) and its trial."""

    def __init__(self, store: IdentityStore, cert_file: Path, health: Health, server_part: str) -> None:
        self.store = store
        #: the configured certificate, used as it is when the store does not manage it
        self.cert_file = cert_file
        self._health = health
        self._server_part = server_part
        self.lfdi: str | None = None
        self.cert: CertIdentity | None = None
        #: why there is no usable client certificate (None when there is one)
        self.problem: str | None = None

    def files(self) -> IdentityFiles | None:
        """The store's identity in force; None when the store does not manage it or has none."""
        if not self.store.managed:
            return None
        try:
            return self.store.current()
        except NoIdentity:
            return None

    def load(self) -> str | None:
        """Our LFDI from the certificate in force; None (and the reason kept) when there is none."""
        files = self.files()
        if files is not None:
            self.problem, self.cert = None, files.identity
        else:
            try:
                self.problem, self.cert = None, load_cert_identity(self.cert_file)
            except IdentityError as exc:
                self.problem, self.cert = str(exc), None
        self.lfdi = self.cert.lfdi if self.cert is not None else None
        return self.lfdi

    def load_at_start(self) -> str | None:
        """`load`; without a certificate, say so and make this box's key and CSR (`birth_key`)."""
        lfdi = self.load()
        if lfdi is None:
            _LOGGER.error(
                "no usable client certificate (%s); waiting for one: wattsmart-gateway identity init/install",
                self.problem,
            )
            self.birth_key()
        return lfdi

    def server_config(self, files: IdentityFiles | None, base: ServerConfig) -> ServerConfig:
        """The server section with the certificate and key in force."""
        return files.server_config(base) if files is not None else base

    def birth_key(self) -> None:
        """A fresh box makes its key and CSR once, so the installer can send the CSR straight away."""
        if not self.store.managed or self.store.pending() is not None:
            return
        # key making brings `cryptography` (~10 MB): only a box that has none loads it, once
        from app.identity.csr import CsrProfile

        try:
            pending = self.store.prepare(CsrProfile())
        except Exception as exc:  # the page still tells the installer to run `identity init`
            _LOGGER.error("could not prepare this box's key and CSR: %s", exc)
            return
        _LOGGER.warning(
            "no certificate: prepared this box's key and CSR (%s) for the utility's CA", pending.csr
        )

    async def watch(
        self, files: IdentityFiles | None, registered: Callable[[], bool], check_s: float = CHECK_S
    ) -> str:
        """Confirm or fall back a certificate on trial; return why the session must be rebuilt.

        `registered`: whether the session's latest snapshot lists our EndDevice.
        """
        stamp = file_stamp(self.cert_file)
        while True:
            await asyncio.sleep(check_s)
            if self.store.managed:
                if self.store.changed(files):
                    return "another client certificate is in force"
            elif file_stamp(self.cert_file) != stamp:
                return f"{self.cert_file} changed"
            if files is None or not self.store.on_trial():
                continue
            failing = self._health.kind(self._server_part)
            if failing is None and registered():
                # the server accepts the new certificate and knows the new LFDI: retire the old one
                await asyncio.to_thread(self.store.confirm_working, files)
            elif failing in REFUSED:
                _LOGGER.error("the server refuses the new certificate; going back to the previous one")
                await asyncio.to_thread(self.store.fall_back, files)
                return "fell back to the previous client certificate"
