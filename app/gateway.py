"""The composition root: builds every part from the configuration and hands them to the supervisor.

Supervised parts: `session` (the 2030.5 session on the certificate in force, made current on the
server port `app.client.server.Server` beside its trial, `app.identity.trial`; another certificate
in force exits with EXIT_RESTART and systemd starts us on it), `dispatch` and `telemetry`
(`app.telemetry.part`), `control` (`app.control.engine`, releases the battery on shutdown), `panel`
(LED and button), `expiry` (certificate expiry) and `configuration` (restarts on a fixed setting).
The inverter and site meter come from `app.site`. The status page (`app.commissioning.serve`) and
the LED read `app.commissioning.report`; they are conveniences: if they cannot start, the battery
is controlled regardless. A box not commissioned (`app.commissioning.checklist`) never drives the
battery and restarts once it is (`app.commissioning.waiting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from pathlib import Path
from typing import Any

from app.client.clock import ServerClock
from app.client.notices import Notices
from app.client.poller import SERVER_PART
from app.client.server import Server
from app.client.session import Session
from app.commissioning import report
from app.commissioning.checklist import Checklist
from app.commissioning.history import History
from app.commissioning.missing import Missing
from app.commissioning.mode import CommissioningMode
from app.commissioning.panel import Panel
from app.commissioning.selftest import self_test
from app.commissioning.serve import serve_page
from app.commissioning.status_page import StatusPage
from app.commissioning.waiting import changed_config, not_commissioned
from app.config import Config
from app.control.engine import ControlEngine
from app.health import Health
from app.identity import IdentityStore, watch_store
from app.identity.peer import server_cert_fetch
from app.identity.trial import CHECK_S, CertificateTrial
from app.meter import ObservedMeter
from app.ota.state import usable_control_flag
from app.site import Site, open_site
from app.store import Store, StoreUnavailable, open_store
from app.store.reset import reset_state
from app.supervisor import Supervisor
from app.telemetry.part import TelemetryPart
from hal.errors import ConfigurationError
from hal.gpio import LedState
from hal.inverter import SafeInverter

_LOGGER = logging.getLogger(__name__)

#: parts that must beat at least this often or the watchdog pings stop (their loops beat ≤ 30 s)
MAX_SILENCE_S = 120.0
#: one discovery walk over a slow server may take minutes (each request may take 20 s)
SESSION_MAX_SILENCE_S = 900.0
#: exit status asking systemd (Restart=on-failure) to start us again, e.g. on a new certificate
EXIT_RESTART = 75


class Gateway:
    """All parts of one running gateway."""

    def __init__(
        self, config: Config, *, rng: random.Random | None = None, config_path: Path | None = None
    ) -> None:
        self.config = config
        #: the file `config` came from: watched while the box is not commissioned or misconfigured
        self.config_path = config_path
        self.rng = rng or random.Random()
        self.health = Health()
        self.supervisor = Supervisor(health=self.health, rng=self.rng)
        self.identity = IdentityStore.from_config(config)
        self.certificate = CertificateTrial(self.identity, config.server.cert_file, self.health, SERVER_PART)
        self.expiry = watch_store(self.identity)
        #: server values the gateway bounded or distrusts (one WARNING each; on the status page)
        self.notices = Notices()
        #: one server clock for the process, whichever session learns the offset
        self.server_clock = ServerClock(max_offset_s=config.server.max_clock_offset_s, notices=self.notices)
        self.server = Server(self.server_clock)
        self.checklist = Checklist(config, self.identity, self.certificate, config_path)
        self.exit_status = 0
        self.identity_check_s = CHECK_S
        self.started = time.monotonic()
        #: the inverter behind its guard, which also keeps what it last saw (for the page and LED)
        self.inverter: SafeInverter | None = None
        #: the site meter at the grid connection point, when one is configured
        self.meter: ObservedMeter | None = None
        self.engine: ControlEngine | None = None
        self.telemetry: TelemetryPart | None = None
        self.panel: Panel | None = None
        self.status_page: StatusPage | None = None
        #: the one state database, shared with control and telemetry (None if it cannot be opened)
        self.store: Store | None = None
        #: the status page's last day in memory (no flash), sampled from status() every 30 s
        self.history = History()
        self.mode = CommissioningMode(config.status_page, lambda: self.status_page)

    @property
    def missing(self) -> list[Missing]:
        """What the box still needs before it may drive the battery (empty: commissioned)."""
        return self.checklist.missing

    def restart(self, reason: str) -> None:
        """Stop cleanly with EXIT_RESTART so that systemd starts us again (e.g. on a new identity)."""
        _LOGGER.warning("%s: restarting the gateway to take it up", reason)
        self.exit_status = EXIT_RESTART
        self.supervisor.stopping.set()

    async def _session(self) -> None:
        """Run the session on the identity in force; restart when another identity comes into force."""
        if self.certificate.lfdi is None or self.missing:
            had = self.certificate.lfdi is not None
            beat = functools.partial(self.health.beat, SERVER_PART)
            path, check_s = self.config_path, self.identity_check_s
            return self.restart(
                await not_commissioned(path, check_s, beat, self.checklist.commissioned_now, had)
            )
        files = self.certificate.files()
        server = self.certificate.server_config(files, self.config.server)
        session = Session(
            server, health=self.health, rng=self.rng, server_clock=self.server_clock, notices=self.notices
        )
        async with session, self.server.serving(session):
            reason = await self.certificate.watch(
                files,
                lambda: bool(session.poller.tree and session.poller.tree.registered),
                self.identity_check_s,
            )
        self.restart(reason)

    async def _configuration(self) -> None:
        """Named recovery: while a problem says a setting must be fixed, a changed configuration
        that loads restarts the gateway on it."""
        self.restart(await changed_config(self.config_path, self.health, self.identity_check_s))

    # --- status -------------------------------------------------------------------------------

    def led_state(self) -> LedState:
        """The highest-priority condition that holds, for the status LED."""
        return report.box_led(self)

    def status(self) -> dict[str, Any]:
        """Everything the status page and /api/status show (no secrets)."""
        return report.status(self)

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Bring the hardware and listener up, say READY, run until SIGTERM, shut down cleanly."""
        cfg = self.config
        sup = self.supervisor
        lfdi = await asyncio.to_thread(self.certificate.load_at_start)
        for item in await asyncio.to_thread(self.checklist.check):
            _LOGGER.warning("not commissioned: %s: %s", item.what, item.line())
        try:
            self.panel = Panel(cfg.gpio, self.led_state, self._on_press)
        except Exception as exc:  # no LED is no reason to leave the battery uncontrolled
            _LOGGER.error("status LED and button unavailable: %s", exc)
        try:  # one inverter, or several driven as one site (`inverter:` a list); and the site meter
            site = await open_site(cfg)
            self.inverter, self.meter = site.inverter, site.meter
        except ConfigurationError as exc:  # named recovery: not commissioned, says what to fix
            self.checklist.inverter_unusable(str(exc))
            site = None
        if self.panel is not None and await self.panel.held_at_power_on():
            await asyncio.to_thread(self.reset_state)
        # opened (and repaired or migrated) once here, before the parts share it; never fatal
        try:
            self.store = open_store(cfg.state_dir)
        except StoreUnavailable as exc:
            _LOGGER.error("state database unavailable, controlling from memory: %s", exc)
        # the poller beats under the server's health name, also while it waits between polls
        sup.add("session", self._session, SESSION_MAX_SILENCE_S, heartbeat=SERVER_PART)
        if site is not None and lfdi is not None and not self.missing:  # else never drives the battery
            self._add_control(site, lfdi)
        if self.panel is not None:
            sup.add("panel", self.panel.run)
        if self.config_path is not None:
            sup.add("configuration", self._configuration)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if cfg.status_page.enabled:
                    self.status_page = await serve_page(stack, cfg.status_page, self.status, self.history)
                await sup.run_until_stopped()
        finally:
            self.mode.close()
            if site is not None:
                await site.close()
            if self.store is not None:
                self.store.close()
            if self.panel is not None:
                self.panel.close()
            sup.notifier.close()
        return self.exit_status

    def _add_control(self, site: Site, lfdi: str) -> None:
        """The parts of a commissioned box: control, telemetry and the expiry watch."""
        cfg, sup, inverter = self.config, self.supervisor, site.inverter
        self.engine = engine = ControlEngine(
            cfg,
            inverter,
            self.server,
            lfdi,
            rng=self.rng,
            health=self.health,
            # the updater waits while this flag says a grid event is in force
            in_force_flag=usable_control_flag(cfg.ota.control_flag),
            server_clock_offset=lambda: self.server_clock.offset.total_seconds(),
            connection_point=site.connection_point(),
        )
        # a changed rating is obeyed at once, not at the next re-assertion
        inverter.on_ratings_change(lambda _old, _new: engine.wake())
        self.telemetry = telemetry = TelemetryPart(
            cfg,
            inverter,
            self.server,
            self.health,
            lfdi,
            self.store,
            rng=self.rng,
            notices=self.notices,
            meter=site.meter,
        )
        sup.add("dispatch", telemetry.dispatch)
        sup.add("control", engine.run, MAX_SILENCE_S)
        sup.add("telemetry", telemetry.run, MAX_SILENCE_S)
        fetch_server = server_cert_fetch(self.identity, cfg.server)
        sup.add("expiry", lambda: self.expiry.run(fetch_server=fetch_server))
        # the parts are cancelled first (telemetry commits its outbox as it stops), then this
        sup.on_shutdown("release the battery", engine.stop)

    async def _on_press(self, press: str) -> None:
        """Button: short = self-test on the LED; long = commissioning mode for a while."""
        if press == "short" and self.panel is not None:
            ok = await self.self_test()
            _LOGGER.info("self-test %s", "passed" if ok else "failed: " + "; ".join(self.health.problems()))
            self.panel.show_result(ok)
        elif press == "long":
            await self.commission()

    async def commission(self) -> None:
        """Commissioning mode: the status page opens to the local network for a bounded time."""
        await self.mode.open()

    async def self_test(self) -> bool:
        """Quick on-box test (the button's short press; app.commissioning.selftest)."""
        return await self_test(self)

    def reset_state(self) -> None:
        """Forget the gateway's state; never the identity or the updater's (app.store.reset)."""
        reset_state(self.config.state_dir, self.config.ota.state_dir)


def run(config: Config, config_path: Path | None = None) -> int:
    """Run the whole gateway from `config` (read from `config_path`) until SIGTERM; the exit status."""
    return asyncio.run(Gateway(config, config_path=config_path).run())
