"""A box whose configuration cannot be used: up, but only the LED, the button and the status page.

No inverter is opened and no server is contacted: the box cannot know its battery or its utility.
The LED shows NOT_COMMISSIONED; a 5-10 s button hold opens the status page to the site network
for `commissioning_s`; the page says what is wrong with the file and how to fix it. The file is
watched: once it loads, the process exits with EXIT_RESTART and systemd starts the gateway on it.

The `gpio` and `status_page` sections are taken from the file when they are valid on their own
(a typo in `inverter` must not move the page off its usual port), else their defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from app.commissioning.missing import SECTION, Missing, unusable_config
from app.commissioning.mode import CommissioningMode
from app.commissioning.panel import Panel
from app.commissioning.status_page import StatusPage
from app.config import ConfigError, GpioConfig, StatusPageConfig, from_dict, load_config
from app.health import Health
from app.store.files import file_stamp
from app.supervisor import Supervisor
from hal.gpio import LedState

_LOGGER = logging.getLogger(__name__)

#: how often the configuration file is looked at (a stat; loaded only when it changed)
CHECK_S = 5.0
#: exit status asking systemd to start us again (app/gateway.py's EXIT_RESTART)
EXIT_RESTART = 75
PART = "configuration"


def _sections(path: Path) -> tuple[GpioConfig, StatusPageConfig]:
    """The file's own gpio and status_page sections where they are valid, else the defaults."""
    gpio, page = GpioConfig(), StatusPageConfig()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return gpio, page
    if not isinstance(data, dict):
        return gpio, page
    with contextlib.suppress(ConfigError, TypeError, ValueError):
        gpio = from_dict(GpioConfig, data.get("gpio") or {}, "gpio")
    with contextlib.suppress(ConfigError, TypeError, ValueError):
        page = from_dict(StatusPageConfig, data.get("status_page") or {}, "status_page")
    return gpio, page


class Unconfigured:
    """The not-commissioned box without a usable configuration."""

    def __init__(self, path: Path, error: str, *, check_s: float = CHECK_S) -> None:
        self.path = path
        self.missing: list[Missing] = [unusable_config(path, error)]
        self.gpio_config, self.page_config = _sections(path)
        self.check_s = check_s
        self.health = Health()
        self.supervisor = Supervisor(health=self.health)
        self.panel: Panel | None = None
        self.status_page: StatusPage | None = None
        self.mode = CommissioningMode(self.page_config, lambda: self.status_page)
        self.exit_status = 0
        self.started = time.monotonic()
        self._stamp = file_stamp(path)

    def led_state(self) -> LedState:
        """NOT_COMMISSIONED, or COMMISSIONING while the page is open to the site."""
        if self.mode.active:
            return LedState.COMMISSIONING
        return LedState.NOT_COMMISSIONED

    def status(self) -> dict[str, Any]:
        """What the status page shows."""
        return {
            "state": "not commissioned",
            "led": self.led_state().name,
            SECTION: {
                **{m.what: m.line() for m in self.missing},
                "battery": "not driven: the gateway does not open the inverter without a configuration",
            },
            "versions": {"uptime s": round(time.monotonic() - self.started)},
        }

    async def _watch(self) -> None:
        """Exit with EXIT_RESTART once the file has changed and loads."""
        while True:
            self.health.beat(PART)
            await asyncio.sleep(self.check_s)
            stamp = file_stamp(self.path)
            if stamp == self._stamp:
                continue
            self._stamp = stamp
            try:
                await asyncio.to_thread(load_config, self.path)
            except ConfigError as exc:
                self.missing = [unusable_config(self.path, str(exc))]
                _LOGGER.error("configuration still unusable: %s", exc)
                continue
            _LOGGER.warning("%s is usable now: restarting the gateway on it", self.path)
            self.exit_status = EXIT_RESTART
            self.supervisor.stopping.set()
            return

    async def _on_press(self, press: str) -> None:
        if press == "long":
            await self.commission()

    async def commission(self) -> None:
        """Open the status page to the site network for `commissioning_s`."""
        await self.mode.open()

    async def run(self) -> int:
        """Run until SIGTERM or a usable configuration; returns the exit status."""
        for item in self.missing:
            _LOGGER.warning("not commissioned: %s: %s", item.what, item.line())
        try:
            self.panel = Panel(self.gpio_config, self.led_state, self._on_press)
        except Exception as exc:  # the page still works
            _LOGGER.error("status LED and button unavailable: %s", exc)
        sup = self.supervisor
        sup.add(PART, self._watch, max(60.0, 4 * self.check_s))
        if self.panel is not None:
            sup.add("panel", self.panel.run)
        cfg = self.page_config
        try:
            async with contextlib.AsyncExitStack() as stack:
                if cfg.enabled:
                    page = StatusPage(self.status, cfg.host, cfg.port)
                    try:
                        self.status_page = await stack.enter_async_context(page)
                    except OSError as exc:
                        _LOGGER.error("status page unavailable on %s:%d: %s", page.host, page.port, exc)
                await sup.run_until_stopped()
        finally:
            self.mode.close()
            if self.panel is not None:
                self.panel.close()
            sup.notifier.close()
        return self.exit_status


def run(path: Path, error: str) -> int:
    """Run the not-commissioned box on an unusable configuration; returns the exit status."""
    return asyncio.run(Unconfigured(path, error).run())
