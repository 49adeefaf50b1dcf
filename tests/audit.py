"""The conformance self-audit: what a 2030.5 test lab checks in a client's request log.

Rules (issue 13), each independent of how the gateway computes its own rates:

- no GET of any path+query sooner than 0.9 × its effective pollRate after a 2xx/304 of it; a GET
  after a failed one (an error retry) is excepted, and so is the first GET of a list after our own
  POST to it (creating a MirrorUsagePoint re-reads the list once);
- every GET is of a resource the server polls (a read outside the polling is a second reader);
- each MirrorUsagePoint's accepted POSTs are the postRate in force apart, ± 3 s (a retry after a
  failed POST is excepted); a client learns of a change only when it next reads the list, so a
  change counts as in force from up to one list pollRate (plus its 10 % phase) before it was made;
- DERStatus PUTs are 60 ± 6 s apart.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from wattsmart_lab.server import Recorded
from wattsmart_lab.tree import PollRates

POST_TOLERANCE_S = 3.0
STATUS_PERIOD_S = 60.0
STATUS_TOLERANCE_S = 6.0
SLACK = 0.9

PollRateOf = Callable[[str], float | None]


def lab_poll_rates(rates: PollRates, default: int = 900, floor: int = 10, ceiling: int = 86400) -> PollRateOf:
    """Effective pollRate per lab path: own, else inherited down the tree; Time's own or the default."""

    def own(value: int | None) -> int | None:
        return None if value is None else min(max(value, floor), ceiling)

    dcap = own(rates.dcap) or max(default, floor)
    edev = own(rates.edev) or dcap
    fsa = own(rates.fsa) or edev
    derp = own(rates.derp) or fsa
    table = [
        (r"/dcap", dcap),
        (r"/tm", own(rates.tm) or max(default, floor)),
        (r"/edev", edev),
        (r"/edev/\d+/fsa", fsa),
        (r"/fsa/\d+/derp", derp),
        (r"/derp/\d+/(derc|actderc|dderc)", derp),
        (r"/edev/\d+/der", own(rates.der) or edev),
        (r"/mup", own(rates.mup) or dcap),
    ]

    def rate_of(path: str) -> float | None:
        return next((float(rate) for pattern, rate in table if re.fullmatch(pattern, path)), None)

    return rate_of


def _ok(status: int) -> bool:
    return 200 <= status < 300 or status == 304


def audit_gets(requests: Sequence[Recorded], rate_of: PollRateOf) -> list[str]:
    """GETs sooner than 0.9 × pollRate after a good read of the same path+query, or of no polled resource."""
    out: list[str] = []
    last_ok: dict[tuple[str, tuple[tuple[str, str], ...]], datetime] = {}
    posted: set[str] = set()
    for r in requests:
        if r.method == "POST" and _ok(r.status):
            posted.add(r.path)
        if r.method != "GET":
            continue
        rate = rate_of(r.path)
        if rate is None:
            out.append(f"GET {r.path} at {r.at:%H:%M:%S}: not a resource the server has us poll")
            continue
        key = (r.path, tuple(sorted(r.query.items())))
        prev = last_ok.get(key)
        excepted = r.path in posted
        if prev is not None and not excepted and (r.at - prev).total_seconds() < SLACK * rate:
            out.append(
                f"GET {r.path}?{dict(key[1])} at {r.at:%H:%M:%S}: "
                f"{(r.at - prev).total_seconds():.1f} s after the last, pollRate {rate:.0f} s"
            )
        if _ok(r.status):
            last_ok[key] = r.at
            posted.discard(r.path)
        else:
            last_ok.pop(key, None)  # the next GET is an error retry
    return out


def _in_force(changes: Sequence[tuple[datetime, int]], start: datetime, end: datetime) -> set[int]:
    """postRates in force at any moment of [start, end] (`changes`: (from when, rate), in order)."""
    rates = {rate for at, rate in changes if start < at <= end}
    before = [rate for at, rate in changes if at <= start]
    if before:
        rates.add(before[-1])
    return rates


def _accepted_intervals(
    requests: Sequence[Recorded], method: str, path: str
) -> list[tuple[datetime, datetime]]:
    """Intervals between accepted requests, leaving out the retry that followed a failure."""
    good: list[datetime] = []
    after_failure = False
    pairs: list[tuple[datetime, datetime]] = []
    for r in requests:
        if (r.method, r.path) != (method, path):
            continue
        if not _ok(r.status):
            after_failure = True
            continue
        if good and not after_failure:
            pairs.append((good[-1], r.at))
        good.append(r.at)
        after_failure = False
    return pairs


def audit_posts(
    requests: Sequence[Recorded], post_rates: Sequence[tuple[datetime, int]], lag_s: float = 0.0
) -> list[str]:
    """Each MUP's accepted POSTs are the postRate in force apart (± 3 s); `lag_s`: how long the
    client may take to learn of a change (the MirrorUsagePointList's pollRate and phase)."""
    out: list[str] = []
    mups = sorted({r.path for r in requests if r.method == "POST" and re.fullmatch(r"/mup/\d+", r.path)})
    for path in mups:
        for a, b in _accepted_intervals(requests, "POST", path):
            gap = (b - a).total_seconds()
            rates = _in_force(post_rates, a - timedelta(seconds=lag_s), b)
            if not any(abs(gap - rate) <= POST_TOLERANCE_S for rate in rates):
                out.append(
                    f"POST {path} at {b:%H:%M:%S}: {gap:.1f} s after the last, postRate {sorted(rates)}"
                )
    return out


def audit_status(requests: Sequence[Recorded]) -> list[str]:
    """DERStatus every 60 ± 6 s."""
    out: list[str] = []
    paths = sorted({r.path for r in requests if r.method == "PUT" and r.path.endswith("/ders")})
    for path in paths:
        for a, b in _accepted_intervals(requests, "PUT", path):
            gap = (b - a).total_seconds()
            if abs(gap - STATUS_PERIOD_S) > STATUS_TOLERANCE_S:
                out.append(f"PUT {path} at {b:%H:%M:%S}: {gap:.1f} s after the last")
    return out


def audit(
    requests: Sequence[Recorded], rate_of: PollRateOf, post_rates: Sequence[tuple[datetime, int]]
) -> list[str]:
    """Every violation of the three rules, one line each (empty: the run conforms)."""
    mup_rate = rate_of("/mup") or 0.0
    lag = mup_rate * 1.1
    return audit_gets(requests, rate_of) + audit_posts(requests, post_rates, lag) + audit_status(requests)


def counts(requests: Sequence[Recorded]) -> dict[str, int]:
    """Requests by method and path (for a report)."""
    key = lambda r: f"{r.method} {r.path}"  # noqa: E731
    return {k: len(list(g)) for k, g in itertools.groupby(sorted(requests, key=key), key=key)}
