"""Expiry: ok at 31 days, a warning (once) at 29, an error state at -1; injected clock throughout."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.identity import CsrProfile, ExpiryLevel, ExpiryWatch, IdentityStore, expiry_level, identity_status
from app.identity.expiry import watch_store
from app.sep.certificate import parse_certificate
from tests.identity.conftest import DAY, NOW, Ca, pem

END = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("days_left", "level"),
    [
        (31, ExpiryLevel.OK),
        (30, ExpiryLevel.WARNING),
        (29, ExpiryLevel.WARNING),
        (0, ExpiryLevel.WARNING),
        (-1, ExpiryLevel.EXPIRED),
    ],
)
def test_expiry_level(days_left: int, level: ExpiryLevel) -> None:
    assert expiry_level(END, END - dt.timedelta(days=days_left)) is level


class Clock:
    """A settable clock."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _watch(intermediate: Ca, clock: Clock) -> ExpiryWatch:
    issued = intermediate.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), not_after=END)
    cert = parse_certificate(issued.public_bytes(serialization.Encoding.DER))
    watch = ExpiryWatch(wall_clock=clock)
    watch.watch("client certificate", lambda: cert)
    return watch


def test_watch_warns_once_then_errors(intermediate: Ca, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.identity")
    clock = Clock(END - 31 * DAY)
    watch = _watch(intermediate, clock)
    watch.check()
    assert not watch.attention and watch.error is None
    assert caplog.records == []
    assert "valid until 2030-06-01" in watch.status()["client certificate"]

    clock.now = END - 29 * DAY
    watch.check()
    watch.check()  # the daily check repeats: the log does not
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "expires on 2030-06-01 12:00 UTC (in 29 days)" in warnings[0].getMessage()
    assert watch.attention and watch.error is None
    assert "in 29 days" in watch.status()["client certificate"]

    clock.now = END + DAY
    watch.check()
    watch.check()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert watch.attention
    assert watch.error is not None and "expired on 2030-06-01" in watch.error
    assert "renewed" in watch.error


def test_renewal_is_logged_as_recovery(intermediate: Ca, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.identity")
    clock = Clock(END - 29 * DAY)
    watch = _watch(intermediate, clock)
    watch.check()
    watch.watch(
        "client certificate",
        lambda: parse_certificate(
            intermediate.issue(
                ec.generate_private_key(ec.SECP256R1()).public_key(), not_after=END + 400 * DAY
            ).public_bytes(serialization.Encoding.DER)
        ),
    )
    watch.check()
    assert not watch.attention
    assert caplog.records[-1].levelno == logging.INFO


def test_server_certificate_is_judged_when_seen(intermediate: Ca) -> None:
    watch = ExpiryWatch(wall_clock=Clock(END - 10 * DAY))
    server = intermediate.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), not_after=END)
    watch.saw_server_certificate(server.public_bytes(serialization.Encoding.DER))
    assert watch.results["server certificate"].level is ExpiryLevel.WARNING
    assert watch.attention


def test_store_status_for_the_page(store: IdentityStore, intermediate: Ca) -> None:
    status = identity_status(store)
    assert "identity init" in status["certificate"]
    pending = store.prepare(CsrProfile())
    cert = intermediate.sign_csr(pending.csr, not_after=NOW + 20 * DAY)
    store.install(pem(cert), pem(intermediate.cert))
    watch = watch_store(store, ExpiryWatch(wall_clock=lambda: NOW))
    watch.check()
    status = identity_status(store, watch)
    assert status["LFDI"] == store.current().identity.lfdi
    assert status["SFDI"] == store.current().identity.sfdi
    assert status["subject"] == "CN=wattsmart-gateway"
    assert status["issuer"] == "CN=Test MICA"
    assert "in 19 days" in status["client certificate"] or "in 20 days" in status["client certificate"]
    assert "valid until" in status["2030.5 root"]
    assert status["attention"] is True
    assert status["rotation"] == "—"
    assert not any("PRIVATE" in str(v) for v in status.values())
