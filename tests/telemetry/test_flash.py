"""The state directory is written sparingly: a day of 30-s samples stays under 2 MB at any postRate."""

from __future__ import annotations

import logging

import pytest

from bench.bench_telemetry import BUDGET_BYTES, simulated_day


@pytest.mark.parametrize("post_rate", [30, 300])
async def test_bytes_written_per_day_stay_within_budget(
    post_rate: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app")  # log lines are writes too; restored afterwards
    hours = 4
    written, _, _ = await simulated_day(post_rate, hours=hours)
    assert written * 24 / hours < BUDGET_BYTES * 0.85  # a margin for checkpoints the sample misses
