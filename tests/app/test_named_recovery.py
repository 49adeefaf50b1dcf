"""Named recovery of configuration problems: a fixed, loadable file restarts the gateway, nothing
else does; a profile that cannot work leaves the box up and waiting (real files, short checks)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from app.commissioning.missing import SECTION
from app.commissioning.waiting import changed_config
from app.config import load_config
from app.gateway import EXIT_RESTART, Gateway
from app.health import Health, Kind
from hal.gpio import LedState
from tests.app.test_gateway_lifecycle import until
from wattsmart_lab.gateway_config import write_lab_config
from wattsmart_lab.server import LabServer

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


async def test_an_inverter_profile_that_cannot_work_leaves_the_box_up_and_waiting(
    tmp_path: Path, lab_server: LabServer, caplog: pytest.LogCaptureFixture
) -> None:
    """At start-up a broken profile is not a crash for systemd to retry (5 s apart, then given up):
    the box stays up, not commissioned, says what to fix once, and restarts on the fixed file."""
    broken = tmp_path / "broken-profile.yaml"
    broken.write_text("registers: [never closed\n", encoding="utf-8")
    state = tmp_path / "state"
    inverter = {"profile": str(broken)}
    path = write_lab_config(tmp_path / "gateway.yaml", lab_server, 1502, state, inverter=inverter)
    gw = Gateway(load_config(path), config_path=path)
    gw.identity_check_s = 0.05
    run = asyncio.create_task(gw.run())
    try:
        assert await until(lambda: gw.status_page is not None and gw.supervisor.parts != {}, 10)
        assert gw.inverter is None and gw.engine is None and not run.done()
        assert [m.what for m in gw.missing] == ["inverter"]
        assert gw.led_state() is LedState.NOT_COMMISSIONED
        line = gw.status()[SECTION]["inverter"]
        assert str(broken) in line and "wattsmart-gateway check" in line
        await asyncio.sleep(0.5)  # many checks later: still waiting, told once
        assert not run.done()
        told = [r for r in caplog.records if "not commissioned: inverter" in r.getMessage()]
        assert len(told) == 1 and told[0].levelno == logging.ERROR
        touch_later(path, path.read_text(encoding="utf-8").replace(str(broken), "sunspec"))
        assert await asyncio.wait_for(run, 10) == EXIT_RESTART
    finally:
        gw.supervisor.stopping.set()
        await asyncio.wait_for(run, 10)
