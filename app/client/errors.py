"""One error hierarchy for the 2030.5 link; each leaf says what the caller should do next.

- `RetryLater`: the server or the network is unwell; try again after a backoff (`retry_after`
  when the server said how long).
- `Rediscover`: the href is gone (404/410); re-read the parent resource to find where it went.
- `Reconfigure`: retrying will not help until someone fixes the certificate, CA or registration.
- `BadResponse`: the server answered something we must not use (wrong content type, malformed or
  oversized body); treated like a transient fault, logged, never a crash.
- `Rejected`: the server refused what we sent (other 4xx); do not repeat the same request.

Each error carries the health `Kind` it reports as (`kind`): the LED and the status page decide
from that, never from the message.
"""

from __future__ import annotations

from typing import ClassVar

from app.health import Kind


class SepError(Exception):
    """Any failure talking to the 2030.5 server."""

    #: what a failure of this class is, for Health (an instance may say more: see ConnectionFailed)
    KIND: ClassVar[Kind] = Kind.SERVER

    def __init__(self, message: str, *, href: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.href = href
        self.status = status

    @property
    def kind(self) -> Kind:
        """The health kind of this failure."""
        return self.KIND


# --- retry later ------------------------------------------------------------------------------


class RetryLater(SepError):
    """Transient: back off and try again; `retry_after` is the server's wish in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        href: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, href=href, status=status)
        self.retry_after = retry_after


class ServerBusy(RetryLater):
    """The server answered 5xx or 429, or its 2030.5 Error body asked us to slow down."""


class ConnectionFailed(RetryLater):
    """No answer: refused, reset, DNS or routing trouble; `no_network` when this box has no route or
    no name resolution at all (then it is the box's network, not the server, that is down)."""

    def __init__(
        self,
        message: str,
        *,
        href: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        no_network: bool = False,
    ) -> None:
        super().__init__(message, href=href, status=status, retry_after=retry_after)
        self.no_network = no_network

    @property
    def kind(self) -> Kind:
        """NETWORK when the box has no network, else SERVER."""
        return Kind.NETWORK if self.no_network else Kind.SERVER


class RequestTimeout(RetryLater):
    """The whole request did not finish within request_timeout_s."""


# --- re-discover ------------------------------------------------------------------------------


class Rediscover(SepError):
    """The href no longer exists (404/410); re-read its parent to find the new link."""


# --- reconfigure ------------------------------------------------------------------------------


class Reconfigure(SepError):
    """Retrying cannot help until the configuration, certificate or registration is fixed."""

    KIND = Kind.CONFIGURATION


class TlsConfigError(Reconfigure):
    """Our CA file, certificate or key cannot be loaded."""

    KIND = Kind.CERTIFICATE


class TlsHandshakeError(Reconfigure):
    """The TLS handshake failed: the message says which side refused what."""

    KIND = Kind.CERTIFICATE


class NotAuthorized(Reconfigure):
    """401/403: the server does not accept our certificate for this resource."""

    KIND = Kind.NOT_REGISTERED


# --- bad response -----------------------------------------------------------------------------


class BadResponse(SepError):
    """The response cannot be used; the server is misbehaving, so it is handled like a transient."""


class WrongContentType(BadResponse):
    """Not application/sep+xml (EXI, HTML error pages, ...)."""


class BodyTooLarge(BadResponse):
    """The body went over max_body_bytes and was abandoned unread."""


class MalformedBody(BadResponse):
    """Not parseable as the 2030.5 resource we asked for."""


# --- rejected ---------------------------------------------------------------------------------


class Rejected(SepError):
    """4xx other than 401/403/404/410/429: the server refused this request as we sent it.

    `reason_code` is the 2030.5 Error reasonCode when the server sent one (0 invalid request
    format, 1 invalid request values, 2 resource limit reached, 3 subscription field not supported).
    """

    KIND = Kind.SERVER_REFUSED

    def __init__(
        self,
        message: str,
        *,
        href: str | None = None,
        status: int | None = None,
        reason_code: int | None = None,
    ) -> None:
        super().__init__(message, href=href, status=status)
        self.reason_code = reason_code
