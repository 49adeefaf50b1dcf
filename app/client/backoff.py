"""Exponential backoff with full jitter, capped, honouring the server's Retry-After."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: a Retry-After beyond this is taken as a server mistake rather than a day-long silence
_MAX_RETRY_AFTER_S = 3600.0


@dataclass(slots=True)
class Backoff:
    """Delays for successive failures: uniform in [0, min(cap, base·2^n)], never below Retry-After."""

    cap_s: float
    rng: random.Random
    base_s: float = 1.0
    failures: int = field(default=0)

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt after one more failure."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.failures, 60))
        self.failures += 1
        delay = self.rng.uniform(0.0, ceiling)
        if retry_after is not None and retry_after > 0:
            # the server's wish is a floor (RFC 9110 §10.2.3); jitter still spreads the herd above it
            delay = max(delay, min(retry_after, max(self.cap_s, _MAX_RETRY_AFTER_S)))
        return delay

    def reset(self) -> None:
        """The link works again: start from the smallest delay next time."""
        self.failures = 0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0)
