"""Health registry: transitions logged once, stale loops detected with an injected clock."""

from __future__ import annotations

import logging

import pytest

from app.health import Health, Kind


def test_transitions_logged_once_and_stale_detection(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    health = Health(monotonic=lambda: now[0])
    caplog.set_level(logging.INFO, logger="app.health")
    health.beat("control")
    for _ in range(5):
        health.problem("session", "server unreachable", Kind.SERVER)
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert health.problems() == {"session": "server unreachable"}
    assert health.kinds() == {"session": Kind.SERVER} and health.kind("control") is None
    health.problem("session", "server unreachable", Kind.NETWORK)  # same words, another kind: no line
    assert [r.levelname for r in caplog.records] == ["ERROR"] and health.kind("session") is Kind.NETWORK
    now[0] += 30
    health.ok("session")
    health.ok("session")
    assert [r.levelname for r in caplog.records] == ["ERROR", "INFO"]
    assert "recovered after 30 s" in caplog.records[-1].getMessage()
    assert health.problems() == {} and health.kinds() == {} and health.kind("session") is None
    assert health.stale(["control", "telemetry"], max_age_s=60) == ["telemetry"]
    now[0] += 31
    assert health.stale(["control"], max_age_s=60) == ["control"]
    assert [(e.problem, e.kind) for e in health.recent] == [("server unreachable", Kind.SERVER), (None, None)]
