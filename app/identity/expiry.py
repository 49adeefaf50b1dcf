"""Certificate expiry, watched: ours, the server's and the root's, at start-up and daily.

`expiry_level` decides from (not_after, now) alone; `ExpiryWatch` reads the certificates, logs
only transitions (one warning when a certificate enters its last 30 days, one error when it
expires) and offers the status mapping, the LED's attention flag and the error for the supervisor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.identity.store import IdentityStore
from app.sep.certificate import Certificate, parse_certificate, pem_certificates
from hal.clock import utc_now

_LOGGER = logging.getLogger(__name__)

#: warn this long before a certificate ends
WARN_BEFORE = dt.timedelta(days=30)
DAY_S = 24 * 3600.0

CertSource = Callable[[], Certificate | None]


class ExpiryLevel(enum.Enum):
    """How close a certificate is to its end."""

    OK = "ok"
    WARNING = "warning"
    EXPIRED = "expired"


def expiry_level(
    not_after: dt.datetime, now: dt.datetime, warn_before: dt.timedelta = WARN_BEFORE
) -> ExpiryLevel:
    """OK, WARNING within `warn_before` of `not_after` (inclusive), EXPIRED after it."""
    if now > not_after:
        return ExpiryLevel.EXPIRED
    if not_after - now <= warn_before:
        return ExpiryLevel.WARNING
    return ExpiryLevel.OK


@dataclass(frozen=True, slots=True)
class CertExpiry:
    """The verdict on one watched certificate."""

    name: str
    subject: str
    not_after: dt.datetime
    level: ExpiryLevel
    #: what to say after the name, e.g. "expires on ... (in 29 days); renew it"
    detail: str

    @property
    def message(self) -> str:
        """The whole sentence, for logs and the error state."""
        return f"{self.name} {self.detail}"


def judge(
    name: str, cert: Certificate, now: dt.datetime, warn_before: dt.timedelta = WARN_BEFORE
) -> CertExpiry:
    """The verdict on `cert` at `now`, with a message an installer or operator can act on."""
    end = cert.not_after
    level = expiry_level(end, now, warn_before)
    when = f"{end:%Y-%m-%d %H:%M} UTC"
    if level is ExpiryLevel.EXPIRED:
        detail = f"expired on {when}; the server will refuse the connection until it is renewed"
    elif level is ExpiryLevel.WARNING:
        days = (end - now).days
        detail = f"expires on {when} (in {days} day{'' if days == 1 else 's'}); renew it"
    else:
        detail = f"valid until {when}"
    return CertExpiry(name, cert.subject, end, level, detail)


class ExpiryWatch:
    """Watches named certificates; `check()` at start-up, then `run()` as a daily task."""

    def __init__(
        self, *, wall_clock: Callable[[], dt.datetime] = utc_now, warn_before: dt.timedelta = WARN_BEFORE
    ) -> None:
        self._wall_clock = wall_clock
        self._warn_before = warn_before
        self._sources: dict[str, CertSource] = {}
        self._levels: dict[str, ExpiryLevel] = {}
        self._server: Certificate | None = None
        self.results: dict[str, CertExpiry] = {}

    def watch(self, name: str, source: CertSource) -> None:
        """Check the certificate `source()` returns (None: not available now) under `name`."""
        self._sources[name] = source

    def saw_server_certificate(self, der: bytes) -> None:
        """Record the server's certificate (DER, from the TLS connection) and judge it at once."""
        cert = parse_certificate(der)
        if cert != self._server:
            self._server = cert
            self._sources.setdefault("server certificate", lambda: self._server)
            self.check()

    def check(self, *, log: bool = True) -> dict[str, CertExpiry]:
        """Judge every watched certificate now; log what changed since the last check (if `log`)."""
        now = self._wall_clock()
        results: dict[str, CertExpiry] = {}
        for name, source in self._sources.items():
            try:
                cert = source()
            except Exception as exc:  # a missing file must not stop the other checks
                _LOGGER.debug("cannot read %s for the expiry check: %s", name, exc)
                cert = None
            if cert is None:
                continue
            verdict = judge(name, cert, now, self._warn_before)
            results[name] = verdict
            if log:
                self._log(verdict)
        self.results = results
        return results

    async def run(
        self,
        interval_s: float = DAY_S,
        fetch_server: Callable[[], Awaitable[bytes | None]] | None = None,
    ) -> None:
        """Check now and then every `interval_s` until cancelled (the supervisor owns the task).

        `fetch_server` (see `app.identity.peer.server_cert_fetch`) reads the server's certificate
        each round; when the server cannot be reached the session reports that, not this watch.
        """
        while True:
            if fetch_server is not None:
                try:
                    der = await fetch_server()
                except Exception as exc:  # a failed probe must never end the daily watch
                    _LOGGER.debug("cannot read the server's certificate for the expiry check: %s", exc)
                else:
                    if der:
                        self.saw_server_certificate(der)
            self.check()
            await asyncio.sleep(interval_s)

    @property
    def attention(self) -> bool:
        """True when any certificate is close to or past its end: the LED's "attention" pattern."""
        return any(r.level is not ExpiryLevel.OK for r in self.results.values())

    @property
    def error(self) -> str | None:
        """The message of an expired certificate (the gateway's error state), else None."""
        expired = [r.message for r in self.results.values() if r.level is ExpiryLevel.EXPIRED]
        return "; ".join(expired) or None

    def status(self) -> dict[str, str]:
        """One line per certificate for the status page and `check`."""
        return {name: r.detail for name, r in self.results.items()}

    def _log(self, verdict: CertExpiry) -> None:
        before = self._levels.get(verdict.name, ExpiryLevel.OK)
        self._levels[verdict.name] = verdict.level
        if verdict.level is before:
            return
        if verdict.level is ExpiryLevel.EXPIRED:
            _LOGGER.error("%s", verdict.message)
        elif verdict.level is ExpiryLevel.WARNING:
            _LOGGER.warning("%s", verdict.message)
        else:
            _LOGGER.info("%s", verdict.message)


def watch_store(store: IdentityStore, watch: ExpiryWatch | None = None) -> ExpiryWatch:
    """An ExpiryWatch (new, or `watch`) over the store's certificate in force and the 2030.5 root."""
    watch = watch or ExpiryWatch()

    def ours() -> Certificate | None:
        found = pem_certificates(store.current().cert.read_bytes())
        return found[0] if found else None

    def root() -> Certificate | None:
        # a bundle may hold several roots: the first to end is the one to watch
        roots = pem_certificates(store.ca_file.read_bytes())
        return min(roots, key=lambda c: c.not_after, default=None)

    watch.watch("client certificate", ours)
    watch.watch("2030.5 root", root)
    return watch
