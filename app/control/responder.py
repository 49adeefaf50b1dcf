"""Posts owed DERControlResponses from the ledger, oldest first, retrying with backoff until taken."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final

from app.client.backoff import Backoff
from app.client.errors import RetryLater, SepError
from app.client.port import ServerPort
from app.control.ledger import Ledger, OwedResponse
from app.control.schedule import DueResponse, to_datetime
from app.health import Health, Kind
from app.sep.response import DERControlResponse
from app.store import StoreUnavailable

_LOGGER = logging.getLogger(__name__)

PART: Final = "control-responses"
_FIRST_RETRY_S: Final = 1.0
#: more owed responses than this at once (a list of many new controls) is told once, as a WARNING
BACKLOG_WARN: Final = 100
#: at shutdown, a POST already on the wire gets this long to be answered
_FINISH_IN_FLIGHT_S: Final = 2.0


def response_document(response: OwedResponse, lfdi: str) -> DERControlResponse:
    """The DERControlResponse for an owed response (subject = the control's mRID)."""
    return DERControlResponse(
        createdDateTime=to_datetime(response.created).replace(microsecond=0),
        endDeviceLFDI=lfdi,
        status=response.status,
        subject=response.mrid,
    )


class Responder:
    """Delivers owed responses in order, at most `per_s` a second; a failure waits a jittered,
    doubling delay, then retries. A list of thousands of new controls is paced, not a burst."""

    def __init__(
        self,
        ledger: Ledger,
        server: ServerPort,
        lfdi: str,
        health: Health,
        *,
        rng: random.Random,
        max_backoff_s: float = 300.0,
        per_s: float = 4.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_s <= 0:
            raise ValueError(f"per_s must be more than 0, got {per_s}")
        self._ledger = ledger
        self._server = server
        self._lfdi = lfdi
        self._health = health
        self._backoff = Backoff(cap_s=max_backoff_s, rng=rng, base_s=_FIRST_RETRY_S)
        self._retry_after: float | None = None
        self._wake = asyncio.Event()
        #: the owed responses last read, to owe them again if the store is rebuilt under us
        self._owed: list[OwedResponse] = []
        self._generation: int | None = None
        self._spacing = 1.0 / per_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._last_sent: float | None = None
        self._per_s = per_s
        self._backlogged = False
        #: responses owed and not yet posted (for the status page)
        self.waiting = 0

    def notify(self) -> None:
        """New responses were recorded: send them now (unless backing off)."""
        self._wake.set()

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            self._wake.clear()
            try:
                owed = self._read_owed()
            except StoreUnavailable as exc:
                self._health.problem(PART, f"cannot read the owed responses ({exc})", Kind.STORAGE)
                await asyncio.sleep(self._backoff.next_delay(None))
                continue
            self._note_backlog(len(owed))
            if not owed:
                await self._wake.wait()
                continue
            for i, response in enumerate(owed):
                self.waiting = len(owed) - i
                await self._pace()
                if not await self._send(response):
                    await self._sleep(self._backoff.next_delay(self._retry_after))
                    break

    def _read_owed(self) -> list[OwedResponse]:
        """The owed responses; after the store was rebuilt, the ones we knew of are owed again."""
        generation = self._ledger.generation
        if self._generation is not None and generation != self._generation and self._owed:
            again = [DueResponse(o.mrid, o.status, o.reply_to, o.created) for o in self._owed]
            self._ledger.commit([], again)
            _LOGGER.warning("%d owed response(s) saved again in the rebuilt store", len(again))
        self._generation = generation
        self._owed = self._ledger.owed()
        return self._owed

    def _delivered(self, response: OwedResponse) -> None:
        """Record a delivery; if the store cannot, the response may be sent again later (harmless)."""
        self._owed = [o for o in self._owed if o.id != response.id]
        try:
            self._ledger.delivered(response)
        except StoreUnavailable as exc:
            _LOGGER.warning(
                "response %s/%d delivered but not recorded: %s", response.mrid, response.status, exc
            )

    def _note_backlog(self, owed: int) -> None:
        self.waiting = owed
        if owed > BACKLOG_WARN and not self._backlogged:
            self._backlogged = True
            _LOGGER.warning(
                "%d responses owed; posting them at %g a second (about %.0f s)",
                owed,
                self._per_s,
                owed / self._per_s,
            )
        elif owed == 0 and self._backlogged:
            self._backlogged = False
            _LOGGER.info("every owed response is posted")

    async def _pace(self) -> None:
        """Wait until one spacing (1 / per_s) has passed since the previous POST began."""
        if self._last_sent is not None:
            wait = self._last_sent + self._spacing - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
        self._last_sent = self._monotonic()

    async def _send(self, response: OwedResponse) -> bool:
        body = response_document(response, self._lfdi)
        post = asyncio.ensure_future(self._server.post(response.reply_to, body))
        try:
            await asyncio.shield(post)
        except asyncio.CancelledError:
            # Shutting down mid-request: the server may already have it. Let it finish (briefly) and
            # record the outcome, or the next start would send this response a second time.
            await asyncio.wait({post}, timeout=_FINISH_IN_FLIGHT_S)
            if post.done() and not post.cancelled() and post.exception() is None:
                self._delivered(response)
            else:
                post.cancel()
            raise
        except Exception as exc:  # whatever the reason, the response stays owed and is retried
            self._retry_after = exc.retry_after if isinstance(exc, RetryLater) else None
            _LOGGER.debug("response %d for %s not taken: %s", response.status, response.mrid, exc)
            kind = exc.kind if isinstance(exc, SepError) else Kind.SOFTWARE
            self._health.problem(PART, f"cannot post responses ({type(exc).__name__})", kind)
            return False
        self._delivered(response)
        _LOGGER.debug("response %d for %s posted to %s", response.status, response.mrid, response.reply_to)
        if self._backoff.failures:
            self._backoff.reset()
            self._health.ok(PART)
        return True
