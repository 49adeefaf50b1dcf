"""The fleet manifest (signed JSON on any static host) and the pure rollout decision.

Envelope: `{"key_id": "fleet-2026", "signature": "<base64>", "payload": "<manifest JSON text>"}`, one
file so a CDN can never serve a manifest with another version's signature. The payload:
`{"format": 1, "product": "wattsmart-gateway", "serial": 7, "published": "...", "releases": [
{"version": "1.5.0", "min_version": "1.2.0", "url": "bundles/wattsmart-gateway-1.5.0.bundle",
"sha256": "...", "size": 123, "stages": [{"percent": 5, "start": "2026-12-01T00:00:00+00:00"},
{"percent": 100, "start": "2026-12-03T00:00:00+00:00"}]}]}`. `url` may be relative to the manifest.
A box takes part in a stage once `start` has passed and its cohort (0–99) is below `percent`;
operations halt a rollout by publishing a manifest with a higher serial and a lower percentage.
The payload also carries `"not_after": "<ISO time>"`: after it the box refuses the manifest (and
says so), so whoever sits on the path cannot keep a box on an old manifest forever.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from app.ota.errors import BundleRejected, OtaError
from app.ota.keys import TrustStore
from app.ota.version import Version

FORMAT = 1
PRODUCT = "wattsmart-gateway"
_COHORT_SALT = b"wattsmart-gateway/ota-cohort/v1:"
#: manifest serials are whole numbers up to this (a box refuses any lower than one it has seen)
MAX_SERIAL = 2**31 - 1


class ManifestError(OtaError):
    """The fleet manifest is malformed, unsigned, or older than one already seen: ignore it."""


class ManifestExpired(ManifestError):
    """The fleet manifest is past its `not_after`: fleet operations must publish a fresh one."""


@dataclass(frozen=True, slots=True)
class Stage:
    """From `start` on, boxes in cohorts below `percent` may install."""

    percent: int
    start: datetime


@dataclass(frozen=True, slots=True)
class FleetRelease:
    """One offered release."""

    version: Version
    min_version: Version | None
    url: str
    sha256: str
    size: int
    stages: tuple[Stage, ...]

    def percent_at(self, now: datetime) -> int:
        """The share of the fleet (0–100) this release is open to at `now`."""
        started = [s for s in self.stages if s.start <= now]
        return max(started, key=lambda s: s.start).percent if started else 0


@dataclass(frozen=True, slots=True)
class FleetManifest:
    """A verified fleet manifest."""

    serial: int
    published: str
    releases: tuple[FleetRelease, ...]
    #: the manifest is refused after this time (None only for manifests built in tests)
    not_after: datetime | None = None


def cohort(lfdi: str) -> int:
    """This box's rollout cohort, 0–99: stable for an LFDI and uniform across a fleet."""
    digest = hashlib.sha256(_COHORT_SALT + lfdi.strip().upper().encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100  # 2**64 % 100 bias is negligible


def next_poll_delay(interval_s: float, jitter: float, rng: random.Random) -> float:
    """Seconds to the next poll: the interval ± a random fraction, so a fleet spreads its polls."""
    return interval_s * (1.0 + rng.uniform(-jitter, jitter))


def choose(
    manifest: FleetManifest,
    running: str | None,
    box_cohort: int,
    now: datetime,
    failed: Sequence[str] = (),
    floor: Version | None = None,
) -> FleetRelease | None:
    """The newest release this box should install now, or None (never one below the security floor)."""
    current = Version(running) if running else None
    offered = []
    for release in manifest.releases:
        if str(release.version) in failed:
            continue  # it already failed here; a fixed build gets a new version
        if floor is not None and release.version < floor:
            continue
        if current is not None and release.version <= current:
            continue
        if current is not None and release.min_version is not None and current < release.min_version:
            continue
        if box_cohort < release.percent_at(now):
            offered.append(release)
    return max(offered, key=lambda r: r.version, default=None)


def parse_manifest(
    data: bytes, trust: TrustStore, base_url: str, now: datetime | None = None
) -> FleetManifest:
    """Verify the envelope's signature, then parse the payload; relative URLs resolve against `base_url`.

    Refused (ManifestExpired) when `now` is past the signed `not_after`; a manifest without one is malformed.
    """
    try:
        envelope = json.loads(data)
        key_id, signature, payload = envelope["key_id"], envelope["signature"], envelope["payload"]
        if not all(isinstance(v, str) for v in (key_id, signature, payload)):
            raise TypeError("key_id, signature and payload must be strings")
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"fleet manifest envelope is malformed ({exc!r})") from None
    try:
        trust.verify(key_id, signature, payload.encode())
    except BundleRejected as exc:
        raise ManifestError(f"fleet manifest refused: {exc}") from None
    try:
        raw = json.loads(payload)
        if raw["format"] != FORMAT or raw["product"] != PRODUCT:
            raise ValueError(f"not a {PRODUCT} manifest of format {FORMAT}")
        releases = tuple(_release(r, base_url) for r in raw["releases"])
        serial = raw["serial"]
        if type(serial) is not int or not 0 <= serial <= MAX_SERIAL:
            raise ValueError(f"serial {serial!r} is not a whole number from 0 to {MAX_SERIAL}")
        not_after = _utc(datetime.fromisoformat(raw["not_after"]))
        manifest = FleetManifest(serial, str(raw.get("published", "")), releases, not_after)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"signed fleet manifest is malformed ({exc!r})") from None
    if now is not None and now > not_after:
        when = now.isoformat(timespec="seconds")
        raise ManifestExpired(f"manifest serial {serial} expired at {not_after.isoformat()} (now {when})")
    return manifest


def _release(raw: dict[str, Any], base_url: str) -> FleetRelease:
    stages = tuple(
        Stage(int(s["percent"]), _utc(datetime.fromisoformat(s["start"]))) for s in raw.get("stages", [])
    )
    if any(not 0 <= s.percent <= 100 for s in stages):
        raise ValueError("stage percent must be 0..100")
    return FleetRelease(
        version=Version(str(raw["version"])),
        min_version=Version(str(raw["min_version"])) if raw.get("min_version") else None,
        url=urljoin(base_url, str(raw["url"])),
        sha256=str(raw["sha256"]).lower(),
        size=int(raw["size"]),
        stages=stages,
    )


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no timezone")
    return value
