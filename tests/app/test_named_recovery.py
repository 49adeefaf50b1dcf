"""Named recovery of a configuration problem: a fixed, loadable file restarts the gateway; nothing
else does (a real file, a short check interval)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.commissioning.waiting import changed_config
from app.health import Health, Kind
from app.lab.gateway_config import write_lab_config
from app.lab.server import LabServer

CHECK_S = 0.02


def touch_later(path: Path, text: str) -> None:
    """Rewrite `path` with a later mtime (a coarse clock must not hide the edit)."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


async def test_a_fixed_configuration_restarts_only_while_a_setting_must_be_fixed(
    tmp_path: Path, lab_server: LabServer
) -> None:
    path = write_lab_config(tmp_path / "gateway.yaml", lab_server, 1502, tmp_path / "state")
    good = path.read_text(encoding="utf-8")
    health = Health()
    watch = asyncio.create_task(changed_config(path, health, CHECK_S))
    touch_later(path, good + "\n")  # an edit while nothing asks for one: no restart
    await asyncio.sleep(10 * CHECK_S)
    assert not watch.done()
    health.problem("control", "the inverter cannot be driven as configured", Kind.INVERTER)
    await asyncio.sleep(10 * CHECK_S)
    assert not watch.done()  # an inverter problem is not a configuration problem
    health.problem("control", "the inverter cannot be driven as configured", Kind.CONFIGURATION)
    touch_later(path, "inverter: [unusable\n")  # a file that does not load is not taken up
    await asyncio.sleep(10 * CHECK_S)
    assert not watch.done()
    touch_later(path, good)
    reason = await asyncio.wait_for(watch, 2.0)
    assert str(path) in reason and "setting had to be fixed" in reason


async def test_without_a_configuration_file_nothing_is_watched() -> None:
    health = Health()
    health.problem("control", "bad profile", Kind.CONFIGURATION)
    watch = asyncio.create_task(changed_config(None, health, CHECK_S))
    await asyncio.sleep(5 * CHECK_S)
    assert not watch.done()
    watch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watch
