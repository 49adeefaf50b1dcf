"""Posts owed DERControlResponses from the ledger, oldest first, retrying with backoff until taken."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Final, Protocol

from app.client.backoff import Backoff
from app.client.errors import RetryLater
from app.control.ledger import Ledger, OwedResponse
from app.control.schedule import to_datetime
from app.health import Health
from app.sep.response import DERControlResponse

_LOGGER = logging.getLogger(__name__)

PART: Final = "control-responses"
_FIRST_RETRY_S: Final = 1.0
#: at shutdown, a POST already on the wire gets this long to be answered
_FINISH_IN_FLIGHT_S: Final = 2.0


class Poster(Protocol):
    """What the responder needs from the session: POST a model to an href, raise when not taken."""

    async def post(self, href: str, obj: object) -> object:
        """POST `obj` (a 2030.5 model) to `href` on the server."""


def response_document(response: OwedResponse, lfdi: str) -> DERControlResponse:
    """The DERControlResponse for an owed response (subject = the control's mRID)."""
    return DERControlResponse(
        createdDateTime=to_datetime(response.created).replace(microsecond=0),
        endDeviceLFDI=lfdi,
        status=response.status,
        subject=response.mrid,
    )


class Responder:
    """Delivers owed responses in order; a failure waits a jittered, doubling delay, then retries."""

    def __init__(
        self,
        ledger: Ledger,
        poster: Poster,
        lfdi: str,
        health: Health,
        *,
        rng: random.Random,
        max_backoff_s: float = 300.0,
    ) -> None:
        self._ledger = ledger
        self._poster = poster
        self._lfdi = lfdi
        self._health = health
        self._backoff = Backoff(cap_s=max_backoff_s, rng=rng, base_s=_FIRST_RETRY_S)
        self._retry_after: float | None = None
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """New responses were recorded: send them now (unless backing off)."""
        self._wake.set()

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            self._wake.clear()
            owed = self._ledger.owed()
            if not owed:
                await self._wake.wait()
                continue
            for response in owed:
                if not await self._send(response):
                    await asyncio.sleep(self._backoff.next_delay(self._retry_after))
                    break

    async def _send(self, response: OwedResponse) -> bool:
        body = response_document(response, self._lfdi)
        post = asyncio.ensure_future(self._poster.post(response.reply_to, body))
        try:
            await asyncio.shield(post)
        except asyncio.CancelledError:
            # Shutting down mid-request: the server may already have it. Let it finish (briefly) and
            # record the outcome, or the next start would send this response a second time.
            await asyncio.wait({post}, timeout=_FINISH_IN_FLIGHT_S)
            if post.done() and not post.cancelled() and post.exception() is None:
                self._ledger.delivered(response)
            else:
                post.cancel()
            raise
        except Exception as exc:  # whatever the reason, the response stays owed and is retried
            self._retry_after = exc.retry_after if isinstance(exc, RetryLater) else None
            _LOGGER.debug("response %d for %s not taken: %s", response.status, response.mrid, exc)
            self._health.problem(PART, f"cannot post responses ({type(exc).__name__})")
            return False
        self._ledger.delivered(response)
        _LOGGER.debug("response %d for %s posted to %s", response.status, response.mrid, response.reply_to)
        if self._backoff.failures:
            self._backoff.reset()
            self._health.ok(PART)
        return True
