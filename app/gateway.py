"""The composition root: builds every part from the configuration and hands them to the supervisor.

Supervised parts: `session` (the 2030.5 session on the certificate in force, made current on the
server port `app.client.server.Server` beside its trial, `app.identity.trial`; another certificate
in force exits with EXIT_RESTART and systemd starts us on it), `dispatch` and `telemetry`
(`app.telemetry.part`), `control` (`app.control.engine`, releases the battery on shutdown), `panel`
(LED and button), `expiry` (certificate expiry) and `configuration` (restarts on a fixed setting).
The status page and the LED read `app.commissioning.report`; they are conveniences: if they cannot
start, the battery is controlled regardless. A box not commissioned never drives the battery and
restarts once it is (`app.commissioning.waiting`).
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
from app.commissioning.history import History, Sampler
from app.commissioning.missing import Missing, unusable_inverter, what_is_missing
from app.commissioning.mode import CommissioningMode
from app.commissioning.panel import Panel
from app.commissioning.selftest import self_test
from app.commissioning.status_page import StatusPage
from app.commissioning.waiting import changed_config, not_commissioned
from app.commissioning.zone import page_zone
from app.config import DEFAULT_CONFIG, Config
from app.control.engine import ControlEngine
from app.control.site_limit import ConnectionPoint
from app.health import Health
from app.identity import IdentityStore, watch_store
from app.identity.peer import server_cert_fetch
from app.identity.trial import CHECK_S, CertificateTrial
from app.meter import ObservedMeter
from app.site import connect_configured, open_meter
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
        self.clock = ServerClock(max_offset_s=config.server.max_clock_offset_s, notices=self.notices)
        self.server = Server(self.clock)
        #: what the box still needs before it may drive the battery (empty: commissioned)
        self.missing: list[Missing] = []
        #: an inverter that cannot work as configured (named recovery: the box waits for a fix)
        self._unusable_inverter: Missing | None = None
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

    def _check_commissioned(self) -> list[Missing]:
        """Re-read what the box still needs (cheap: a few stat calls)."""
        extra = () if self.config_path is None else (self.config_path,)
        unusable = [self._unusable_inverter] if self._unusable_inverter is not None else []
        self.missing = [
            *what_is_missing(self.config, self.identity, self.certificate.problem, *extra),
            *unusable,
        ]
        return self.missing

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
            return self.restart(await not_commissioned(path, check_s, beat, self._commissioned_now, had))
        files = self.certificate.files()
        server = self.certificate.server_config(files, self.config.server)
        session = Session(server, health=self.health, rng=self.rng, clock=self.clock, notices=self.notices)
        async with session, self.server.serving(session):
            reason = await self.certificate.watch(
                files,
                lambda: bool(session.poller.tree and session.poller.tree.registered),
                self.identity_check_s,
            )
        self.restart(reason)

    def _commissioned_now(self) -> bool:
        """Whether the box has a certificate and everything else it needs now (in a thread)."""
        return self.certificate.load() is not None and not self._check_commissioned()

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
        lfdi = await asyncio.to_thread(self.certificate.load)
        if lfdi is None:
            _LOGGER.error(
                "no usable client certificate (%s); waiting for one: wattsmart-gateway identity init/install",
                self.certificate.problem,
            )
            await asyncio.to_thread(self.certificate.birth_key)
        for item in await asyncio.to_thread(self._check_commissioned):
            _LOGGER.warning("not commissioned: %s: %s", item.what, item.line())
        try:
            self.panel = Panel(cfg.gpio, self.led_state, self._on_press)
        except Exception as exc:  # no LED is no reason to leave the battery uncontrolled
            _LOGGER.error("status LED and button unavailable: %s", exc)
        self.inverter = inverter = await self._connect()
        if self.panel is not None and await self.panel.held_at_power_on():
            await asyncio.to_thread(self.reset_state)
        # opened (and repaired or migrated) once here, before the parts share it; never fatal
        try:
            self.store = open_store(cfg.state_dir)
        except StoreUnavailable as exc:
            _LOGGER.error("state database unavailable, controlling from memory: %s", exc)
        # the poller beats under the server's health name, also while it waits between polls
        sup.add("session", self._session, SESSION_MAX_SILENCE_S, heartbeat=SERVER_PART)
        if inverter is not None and lfdi is not None and not self.missing:  # else never drives the battery
            self._add_control(inverter, lfdi)
        if self.panel is not None:
            sup.add("panel", self.panel.run)
        if self.config_path is not None:
            sup.add("configuration", self._configuration)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if cfg.status_page.enabled:
                    await self._open_page(stack)
                await sup.run_until_stopped()
        finally:
            self.mode.close()
            if inverter is not None:
                await inverter.close()
            if self.meter is not None:
                await self.meter.close()
            if self.store is not None:
                self.store.close()
            if self.panel is not None:
                self.panel.close()
            sup.notifier.close()
        return self.exit_status

    async def _connect(self) -> SafeInverter | None:
        """The inverter behind its guard, read once for the page and LED (a dead one is shown, not fatal);
        None when it cannot work as configured (named recovery: not commissioned, says what to fix)."""
        try:
            # one inverter, or several driven as one site (`inverter:` a list); and the site meter
            inverter = await connect_configured(self.config)
            self.meter = open_meter(self.config)
        except ConfigurationError as exc:
            self._unusable_inverter = unusable_inverter(self.config_path or DEFAULT_CONFIG, str(exc))
            self.missing.append(self._unusable_inverter)
            _LOGGER.error("not commissioned: inverter: %s", self._unusable_inverter.line())
            return None
        with contextlib.suppress(Exception):  # the sampler's first tick may be 30 s away
            await asyncio.wait_for(inverter.read_telemetry(), 3)
        return inverter

    def _add_control(self, inverter: SafeInverter, lfdi: str) -> None:
        """The parts of a commissioned box: control, telemetry and the expiry watch."""
        cfg, sup = self.config, self.supervisor
        # the updater waits while this flag says a grid event is in force (RuntimeDirectory on a box)
        flag = cfg.ota.control_flag if cfg.ota.control_flag.parent.is_dir() else None
        self.engine = engine = ControlEngine(
            cfg,
            inverter,
            self.server,
            lfdi,
            rng=self.rng,
            health=self.health,
            in_force_flag=flag,
            clock_offset=lambda: self.clock.offset.total_seconds(),
            connection_point=ConnectionPoint(self.meter) if self.meter is not None else None,
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
            meter=self.meter,
        )
        sup.add("dispatch", telemetry.dispatch)
        sup.add("control", engine.run, MAX_SILENCE_S)
        sup.add("telemetry", telemetry.run, MAX_SILENCE_S)
        fetch_server = server_cert_fetch(self.identity, cfg.server)
        sup.add("expiry", lambda: self.expiry.run(fetch_server=fetch_server))
        # the parts are cancelled first (telemetry commits its outbox as it stops), then this
        sup.on_shutdown("release the battery", engine.stop)

    async def _open_page(self, stack: contextlib.AsyncExitStack) -> None:
        """The status page and its history sampler (a taken port is logged, never fatal)."""
        cfg = self.config.status_page
        page = StatusPage(
            self.status, cfg.host, cfg.port, history=self.history, zone=page_zone(cfg.time_zone)
        )
        try:
            self.status_page = await stack.enter_async_context(page)
        except OSError as exc:  # e.g. the port is taken: the battery matters more
            _LOGGER.error("status page unavailable on %s:%d: %s", page.host, page.port, exc)
        sampler = asyncio.create_task(Sampler(self.history).run(self.status), name="history")
        stack.push_async_callback(_cancelled, sampler)

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


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has stopped."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
