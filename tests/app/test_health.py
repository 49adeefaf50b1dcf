"""Health registry: transitions logged once, stale loops detected with an injected clock."""

from __future__ import annotations

import logging

import pytest

from app.health import Health


def test_transitions_logged_once_and_stale_detection(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    health = Health(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="app.health")
    health.beat("control")
    for _ in range(5):
        health.problem("session", "server unreachable")
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert health.problems() == {"session": "server unreachable"}
    now[0] += 30
    health.ok("session")
    health.ok("session")
    assert [r.levelname for r in caplog.records] == ["ERROR", "INFO"]
    assert "recovered after 30 s" in caplog.records[-1].getMessage()
    assert health.problems() == {}
    assert health.stale(["control", "telemetry"], max_age_s=60) == ["telemetry"]
    now[0] += 31
    assert health.stale(["control"], max_age_s=60) == ["control"]
    assert [e.problem for e in health.recent] == ["server unreachable", None]
