"""Fleet rollout decisions: cohorts, stages, jitter, and the signed manifest envelope."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from app.ota.fleet import (
    FleetManifest,
    FleetRelease,
    ManifestError,
    Stage,
    choose,
    cohort,
    next_poll_delay,
    parse_manifest,
)
from app.ota.keys import TrustStore
from app.ota.version import Version
from wattsmart_release.signing import generate_key, sign_manifest

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def release(version: str, *stages: tuple[int, int], min_version: str | None = None) -> FleetRelease:
    """A release whose stages start `hours` from NOW: (percent, hours)."""
    return FleetRelease(
        Version(version),
        Version(min_version) if min_version else None,
        f"https://cdn.example/{version}.bundle",
        "0" * 64,
        100,
        tuple(Stage(p, NOW + timedelta(hours=h)) for p, h in stages),
    )


def test_cohort_is_stable_and_roughly_uniform() -> None:
    rng = random.Random(1)
    lfdis = [f"{rng.getrandbits(160):040X}" for _ in range(20_000)]
    buckets = Counter(cohort(lfdi) for lfdi in lfdis)
    assert set(buckets) == set(range(100))
    assert all(140 <= n <= 260 for n in buckets.values()), buckets.most_common(3)  # expected 200 each
    chi2 = sum((n - 200) ** 2 / 200 for n in buckets.values())
    assert chi2 < 150  # 99 degrees of freedom: p < 0.001 above ~149
    assert cohort(lfdis[0]) == cohort(lfdis[0].lower()) == cohort(f" {lfdis[0]} ")
    assert cohort("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5") == 57  # pinned: a box never changes cohort


def test_stages_open_a_release_to_more_cohorts_over_time() -> None:
    manifest = FleetManifest(1, "", (release("1.1.0", (5, -1), (50, 24), (100, 48)),))
    assert choose(manifest, "1.0.0", 4, NOW) is not None
    assert choose(manifest, "1.0.0", 5, NOW) is None
    assert choose(manifest, "1.0.0", 49, NOW + timedelta(hours=24)) is not None
    assert choose(manifest, "1.0.0", 99, NOW + timedelta(hours=47)) is None
    assert choose(manifest, "1.0.0", 99, NOW + timedelta(hours=48)) is not None


def test_choose_skips_old_failed_and_too_new_releases() -> None:
    manifest = FleetManifest(
        1,
        "",
        (
            release("0.9.0", (100, -1)),
            release("1.1.0", (100, -1)),
            release("1.2.0", (100, -1)),
            release("2.0.0", (100, -1), min_version="1.5.0"),
        ),
    )
    chosen = choose(manifest, "1.0.0", 50, NOW)
    assert chosen is not None and str(chosen.version) == "1.2.0"
    chosen = choose(manifest, "1.0.0", 50, NOW, failed=["1.2.0"])
    assert chosen is not None and str(chosen.version) == "1.1.0"
    assert choose(manifest, "1.2.0", 50, NOW) is None


def test_poll_delay_is_jittered_within_bounds_and_reproducible() -> None:
    delays = [next_poll_delay(3600, 0.25, random.Random(7)) for _ in range(2)]
    assert delays[0] == delays[1]
    spread = [next_poll_delay(3600, 0.25, r) for r in [random.Random(i) for i in range(200)]]
    assert all(2700 <= d <= 4500 for d in spread) and max(spread) - min(spread) > 1000


def test_manifest_signature_and_relative_urls() -> None:
    key = generate_key()
    trust = TrustStore(1, {"k1": key.public_key()})
    payload = {
        "format": 1,
        "product": "wattsmart-gateway",
        "serial": 3,
        "not_after": "2027-01-01T00:00:00+00:00",
        "releases": [
            {
                "version": "1.1.0",
                "url": "bundles/gw-1.1.0.bundle",
                "sha256": "AB" * 32,
                "size": 10,
                "stages": [{"percent": 10, "start": "2026-12-01T00:00:00+00:00"}],
            }
        ],
    }
    signed = sign_manifest(payload, key, "k1")
    manifest = parse_manifest(signed, trust, "https://cdn.example/fleet/manifest.json")
    assert manifest.serial == 3
    assert manifest.releases[0].url == "https://cdn.example/fleet/bundles/gw-1.1.0.bundle"
    assert manifest.releases[0].sha256 == "ab" * 32

    envelope = json.loads(signed)
    envelope["payload"] = envelope["payload"].replace('"percent": 10', '"percent": 100')
    with pytest.raises(ManifestError, match="does not verify"):
        parse_manifest(json.dumps(envelope).encode(), trust, "https://cdn.example/")
    with pytest.raises(ManifestError, match="unknown key"):
        parse_manifest(sign_manifest(payload, generate_key(), "k2"), trust, "https://cdn.example/")
