"""The button's short press: a quick on-box test whose result the LED shows for a few seconds."""

from __future__ import annotations

import contextlib

from app.client.poller import SERVER_PART
from app.commissioning.report import Box


async def self_test(box: Box) -> bool:
    """The inverter answers now, the server is reachable and lists us, and the certificate is fine."""
    inverter_ok = False
    if box.inverter is not None:
        with contextlib.suppress(Exception):
            await box.inverter.read_telemetry()
            inverter_ok = True
    tree = box.server.tree
    server_ok = tree is not None and tree.registered and box.health.kind(SERVER_PART) is None
    return inverter_ok and server_ok and box.expiry.error is None
