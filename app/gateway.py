"""The composition root: builds every part from the configuration and hands them to the supervisor.

Parts and their owners:

- `link`: the 2030.5 session (TLS, discovery, polling). It confirms a certificate on trial once
  the server accepts it and lists our EndDevice, and falls back to the previous identity when the
  server refuses it. When another certificate comes into force (an install, a fall-back, or the
  first certificate of a new box) the process exits with EXIT_RESTART and systemd starts it again
  on the new identity: LFDI, mirrors and responses then all agree (a reconnect, not a reboot).
- `dispatch`: hands each new server snapshot's links to the telemetry (and saves them).
- `control`: the DER control engine (releases the battery on shutdown).
- `telemetry`: the 30-s sampler, mirrors, DER reports and the outbox (committed when it stops).
- `panel`: the status LED and the button; `expiry`: the certificate expiry watch.
The status page is a listener owned by `Gateway.run` itself; the status page and the panel are
conveniences: if they cannot start, the gateway logs it and controls the battery regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import __version__
from app.client.clock import ServerClock
from app.client.notices import Notices
from app.client.server import Server
from app.client.session import Session
from app.commissioning.events import describe_default, describe_events
from app.commissioning.history import History, Sampler
from app.commissioning.missing import SECTION, Missing, status_section, what_is_missing
from app.commissioning.panel import Panel
from app.commissioning.status_page import StatusPage
from app.commissioning.zone import page_zone
from app.config import Config, ConfigError, load_config
from app.control.engine import ControlEngine
from app.control.schedule import Plan
from app.hardware import inverter_settings
from app.health import Health, Kind
from app.identity import IdentityFiles, IdentityStore, NoIdentity, identity_status, watch_store
from app.identity.peer import server_cert_fetch
from app.observed import ObservedInverter
from app.ota.state import is_updating
from app.sep.identity import CertIdentity, IdentityError, load_cert_identity
from app.store import Store, StoreUnavailable, open_store
from app.supervisor import Supervisor
from app.telemetry import ServerTimebase, TelemetryLinks, TelemetryService
from hal.gpio import LedState, highest
from hal.inverter import SafeInverter, connect_inverter

_LOGGER = logging.getLogger(__name__)

SERVER_PART = "2030.5 server"
#: the server's telemetry hrefs, so a restart during an outage goes on sampling into the outbox: kept in
#: the store under LINKS_KEY (a box of the old layout has them in LINKS_FILE, moved in once)
LINKS_KEY = "telemetry:links"
LINKS_FILE = "telemetry-links.json"
#: how often the link checks for a newly installed certificate and confirms one on trial
IDENTITY_CHECK_S = 30.0
#: parts that must beat at least this often or the watchdog pings stop (their loops beat ≤ 30 s)
MAX_SILENCE_S = 120.0
LINK_MAX_SILENCE_S = 900.0
#: exit status asking systemd (Restart=on-failure) to start us again, e.g. on a new certificate
EXIT_RESTART = 75


class Gateway:
    """All parts of one running gateway."""

    def __init__(
        self, config: Config, *, rng: random.Random | None = None, config_path: Path | None = None
    ) -> None:
        self.config = config
        #: the file `config` came from: watched while the box is not commissioned
        self.config_path = config_path
        self.rng = rng or random.Random()
        self.health = Health()
        self.supervisor = Supervisor(health=self.health, rng=self.rng)
        self.identity = IdentityStore.from_config(config)
        self.expiry = watch_store(self.identity)
        #: one server clock for the process, whichever session learns the offset
        #: server values the gateway bounded or distrusts (one WARNING each; on the status page)
        self.notices = Notices()
        self.clock = ServerClock(max_offset_s=config.server.max_clock_offset_s, notices=self.notices)
        self.server = Server(self.clock)
        self.lfdi: str | None = None
        #: why there is no usable client certificate (None when there is one)
        self.identity_problem: str | None = None
        self.cert_identity: CertIdentity | None = None
        #: what the box still needs before it may drive the battery (empty: commissioned)
        self.missing: list[Missing] = []
        self.exit_status = 0
        self.identity_check_s = IDENTITY_CHECK_S
        self.started = time.monotonic()
        self.inverter: ObservedInverter | None = None
        self.guard: SafeInverter | None = None
        self.engine: ControlEngine | None = None
        self.telemetry: TelemetryService | None = None
        self.panel: Panel | None = None
        self.status_page: StatusPage | None = None
        #: the one state database, shared with control and telemetry (None if it cannot be opened)
        self.store: Store | None = None
        #: the status page's last day in memory (no flash), sampled from status() every 30 s
        self.history = History()
        self.commissioning_until: float | None = None
        self._saved_links: TelemetryLinks | None = None
        self._commissioning: asyncio.Task[None] | None = None

    # --- the parts ----------------------------------------------------------------------------

    def _identity_files(self) -> IdentityFiles | None:
        if not self.identity.managed:
            return None
        try:
            return self.identity.current()
        except NoIdentity:
            return None

    def _load_identity(self) -> str | None:
        """Our LFDI from the certificate in force; None (and the reason kept) when there is none."""
        files = self._identity_files()
        if files is not None:
            self.identity_problem = None
            self.cert_identity = files.identity
            return files.identity.lfdi
        try:
            self.cert_identity = load_cert_identity(self.config.server.cert_file)
        except IdentityError as exc:
            self.identity_problem = str(exc)
            self.cert_identity = None
            return None
        self.identity_problem = None
        return self.cert_identity.lfdi

    def _check_commissioned(self) -> list[Missing]:
        """Re-read what the box still needs (cheap: a few stat calls)."""
        path = self.config_path
        self.missing = what_is_missing(
            self.config, self.identity, self.identity_problem, *(() if path is None else (path,))
        )
        return self.missing

    def _birth_key(self) -> None:
        """A fresh box makes its key and CSR once, so the installer can send the CSR straight away."""
        if not self.identity.managed or self.identity.pending() is not None:
            return
        # key making brings `cryptography` (~10 MB): only a box that has none loads it, once
        from app.identity.csr import CsrProfile

        try:
            pending = self.identity.prepare(CsrProfile())
        except Exception as exc:  # the page still tells the installer to run `identity init`
            _LOGGER.error("could not prepare this box's key and CSR: %s", exc)
            return
        _LOGGER.warning(
            "no certificate: prepared this box's key and CSR (%s) for the utility's CA", pending.csr
        )

    def _cert_stamp(self) -> tuple[int, int] | None:
        """The configured certificate file's mtime and size, to notice a replaced file."""
        try:
            st = self.config.server.cert_file.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def restart(self, reason: str) -> None:
        """Stop cleanly with EXIT_RESTART so that systemd starts us again (e.g. on a new identity)."""
        _LOGGER.warning("%s: restarting the gateway to take it up", reason)
        self.exit_status = EXIT_RESTART
        self.supervisor.stopping.set()

    async def _link(self) -> None:
        """Run the session on the identity in force; restart when another identity comes into force."""
        if self.lfdi is None or self.missing:
            reason = await self._await_identity()
            self.restart(reason)
            return
        files = self._identity_files()
        server = files.server_config(self.config.server) if files is not None else self.config.server
        session = Session(server, health=self.health, rng=self.rng, clock=self.clock, notices=self.notices)
        async with session, self.server.serving(session):
            reason = await self._watch_identity(session, files)
        self.restart(reason)

    async def _await_identity(self) -> str:
        """A box not commissioned waits for its certificate, CA and configuration, beating so the
        watchdog stays fed; returns why it must restart."""
        stamp = _stamp(self.config_path)
        while True:
            self.health.beat(SERVER_PART)
            await asyncio.sleep(self.identity_check_s)
            if self.config_path is not None and _stamp(self.config_path) != stamp:
                stamp = _stamp(self.config_path)
                try:
                    await asyncio.to_thread(load_config, self.config_path)
                except ConfigError as exc:
                    _LOGGER.error("the changed configuration is not usable yet: %s", exc)
                else:
                    return f"{self.config_path} changed"
            lfdi = await asyncio.to_thread(self._load_identity)
            if lfdi is not None and not await asyncio.to_thread(self._check_commissioned):
                return (
                    "the box is commissioned now"
                    if self.lfdi is not None
                    else "a client certificate is now installed"
                )

    async def _watch_identity(self, session: Session, files: IdentityFiles | None) -> str:
        """Confirm or fall back a certificate on trial; return why the session must be rebuilt."""
        stamp = self._cert_stamp()
        while True:
            await asyncio.sleep(self.identity_check_s)
            if self.identity.managed:
                if self.identity.changed(files):
                    return "another client certificate is in force"
            elif self._cert_stamp() != stamp:
                return f"{self.config.server.cert_file} changed"
            if files is None or not self.identity.on_trial():
                continue
            failing = self.health.kind(SERVER_PART)
            tree = session.poller.tree
            if tree is not None and tree.registered and failing is None:
                # the server accepts the new certificate and knows the new LFDI: retire the old one
                await asyncio.to_thread(self.identity.confirm_working, files)
            elif failing in (Kind.CERTIFICATE, Kind.NOT_REGISTERED):
                _LOGGER.error("the server refuses the new certificate; going back to the previous one")
                await asyncio.to_thread(self.identity.fall_back, files)
                return "fell back to the previous client certificate"

    async def _dispatch(self) -> None:
        """Hand each new snapshot's links to the telemetry (control follows the snapshots itself)."""
        async for tree in self.server.snapshots():
            links = TelemetryLinks.from_tree(tree)
            if links is None:
                continue
            if self.telemetry is not None:
                self.telemetry.update_links(links)
            if links != self._saved_links:
                self._store_links(links)
                self._saved_links = links

    @property
    def _links_file(self) -> Path:
        return self.config.state_dir / LINKS_FILE

    def _store_links(self, links: TelemetryLinks) -> None:
        """Save the links in the store (written only when the server moves them: rare)."""
        if self.store is None:
            return
        try:
            self.store.state.set(LINKS_KEY, json.dumps(dataclasses.asdict(links)))
        except StoreUnavailable as exc:
            _LOGGER.warning("telemetry links not saved: %s", exc)

    def _stored_links(self) -> TelemetryLinks | None:
        """The links saved by an earlier run (moving them in from the old layout's file), or None."""
        if self.store is None:
            return None
        try:
            text = self.store.state.get(LINKS_KEY)
        except StoreUnavailable as exc:
            _LOGGER.warning("telemetry links not read: %s", exc)
            return None
        if text is None and self._links_file.exists():
            links = _load_links(self._links_file)
            if links is not None:
                self._store_links(links)
            self._links_file.unlink(missing_ok=True)
            return links
        return _parse_links(text) if text is not None else None

    async def _telemetry(self, inverter: ObservedInverter, lfdi: str) -> None:
        """Run the telemetry service on the links last seen (a restart during an outage keeps sampling),
        or, on a box that has never reached the server, once discovery finds our DER or mirror links."""
        links = self._saved_links = self._stored_links()
        while links is None:
            tree = self.server.tree
            links = TelemetryLinks.from_tree(tree) if tree is not None else None
            if links is None:
                self.health.beat("telemetry")
                await asyncio.sleep(5)
        self.telemetry = TelemetryService(
            self.config,
            inverter,
            self.server,
            links,
            ServerTimebase(self.server.now),
            self.health,
            lfdi,
            rng=self.rng,
            notices=self.notices,
        )
        # a snapshot published before the service existed was not handed to it by _dispatch
        tree = self.server.tree
        current = TelemetryLinks.from_tree(tree) if tree is not None else None
        if current is not None:
            self.telemetry.update_links(current)
        await self.telemetry.run()

    # --- status -------------------------------------------------------------------------------

    def led_state(self) -> LedState:
        """The highest-priority condition that holds, for the status LED."""
        problems = self.health.problems()
        holds: set[LedState] = set()
        commissioning = self.commissioning_until is not None and time.monotonic() < self.commissioning_until
        if self.supervisor.crash_looping() or (self.expiry.error and not self.missing):
            holds.add(LedState.FAULT)
        if self.missing and not commissioning:
            holds.add(LedState.NOT_COMMISSIONED)
        if is_updating(self.config.ota.state_dir):
            holds.add(LedState.UPDATING)
        tree = self.server.tree
        server_problem = self.health.kind(SERVER_PART)
        if self.missing:
            pass  # not commissioned: the server is not even tried, its states would only mislead
        elif server_problem is not None:
            if server_problem is Kind.NOT_REGISTERED:
                holds.add(LedState.NOT_REGISTERED)  # 401/403: the utility does not know our LFDI
            elif server_problem is Kind.NETWORK:
                holds.add(LedState.NO_NETWORK)
            else:
                holds.add(LedState.NO_SERVER)
        elif tree is None:
            holds.add(LedState.BOOTING)
        elif not tree.registered:
            holds.add(LedState.NOT_REGISTERED)
        if self.inverter is None or self.inverter.failure is not None:
            holds.add(LedState.NO_INVERTER)
        if commissioning:
            holds.add(LedState.COMMISSIONING)
        if self.expiry.attention or problems or self._inverter_data_problems():
            holds.add(LedState.ATTENTION)
        return highest(holds)

    def status(self) -> dict[str, Any]:
        """Everything the status page and /api/status show (no secrets)."""
        tree = self.server.tree
        problems = self.health.problems()
        kinds = self.health.kinds()
        led = self.led_state()
        data_problems = self._inverter_data_problems()
        state = "fault" if led is LedState.FAULT else "degraded" if problems or data_problems else "ok"
        if self.missing:
            state = "not commissioned"
        inv = self.inverter
        sample = inv.telemetry if inv is not None else None
        plan = self.engine.plan if self.engine is not None else None
        ident: dict[str, Any]
        try:
            ident = identity_status(self.identity, self.expiry)
        except Exception as exc:  # the page must render even without an identity
            ident = {"error": str(exc)}
        if self.identity_problem:
            ident = {"problem": f"{self.identity_problem}; install one with `wattsmart-gateway identity`"}
        return {
            "state": state,
            "led": led.name,
            **({SECTION: status_section(self.missing, self.cert_identity)} if self.missing else {}),
            "identity": ident,
            "server": {
                "url": self.config.server.dcap_url,
                "connected": tree is not None and SERVER_PART not in problems,
                "registered": tree.registered if tree is not None else None,
                "last read": tree.read_at.isoformat() if tree is not None and tree.read_at else None,
                "programs": len(tree.programs) if tree is not None else None,
                "clock offset s": round(self.clock.offset.total_seconds()) if self.clock.synced else None,
                "bounded inputs": list(self.notices.current().values()) or None,
            },
            "control": {
                "in force": _in_force(plan),
                "next change": _iso(plan.next_change) if plan else None,
                "setpoint W": inv.setpoint_w if inv is not None else None,
                "responses waiting": self.engine.responses_waiting if self.engine is not None else None,
                "mode": "utility setpoint"
                if inv is not None and inv.setpoint_w is not None
                else "battery's own",
                "events": describe_events(plan, tree.programs if tree is not None else ()),
                "default control": describe_default(plan),
            },
            "inverter": {
                "reachable": inv is not None and inv.failure is None and inv.last_success is not None,
                "power W": sample.w if sample else None,
                "frequency Hz": sample.hz if sample else None,
                "state of charge %": sample.soc_pct if sample else None,
                "read at": sample.timestamp.isoformat() if sample else None,
                "questionable": dict(sample.suspect) if sample and sample.suspect else None,
                "problem": inv.failure if inv is not None else "not connected",
                "data not trusted": list(data_problems.values()) or None,
                **self._limits_status(),
            },
            "telemetry": self._telemetry_status(),
            "storage": self.store.status() if self.store is not None else {"problem": "not open"},
            "problems": {
                "current": [
                    {"part": k, "kind": kinds.get(k), "problem": v} for k, v in sorted(problems.items())
                ]
                or None,
                "recent": [
                    {"part": e.part, "kind": e.kind, "problem": e.problem}
                    for e in list(self.health.recent)[-5:]
                ],
            },
            "versions": {"gateway": __version__, "uptime s": round(time.monotonic() - self.started)},
        }

    def _inverter_data_problems(self) -> dict[str, str]:
        """What the guard does not trust in the inverter's data (ratings, SoC, readings), in words."""
        return dict(self.guard.problems) if self.guard is not None else {}

    def _limits_status(self) -> dict[str, Any]:
        guard = self.guard
        ratings = guard.ratings if guard is not None else None
        plate = guard.nameplate if guard is not None else None
        return {
            "max discharge W": ratings.discharge_limit_w() if ratings else None,
            "max charge W": ratings.charge_limit_w() if ratings else None,
            "nameplate W": f"{plate.max_discharge_w:g} discharge / {plate.max_charge_w:g} charge"
            if plate
            else "not configured (inverter.nameplate)",
        }

    def _telemetry_status(self) -> dict[str, Any]:
        service = self.telemetry
        if service is None:
            if self.lfdi is None:
                return {"state": "waiting for a client certificate"}
            return {"state": "waiting for the server's DER or mirror links"}
        return {"interval s": self.config.telemetry.interval_s, **service.status()}

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Bring the hardware and listener up, say READY, run until SIGTERM, shut down cleanly."""
        cfg = self.config
        sup = self.supervisor
        self.lfdi = lfdi = await asyncio.to_thread(self._load_identity)
        if lfdi is None:
            _LOGGER.error(
                "no usable client certificate (%s); waiting for one: wattsmart-gateway identity init/install",
                self.identity_problem,
            )
            await asyncio.to_thread(self._birth_key)
        for item in await asyncio.to_thread(self._check_commissioned):
            _LOGGER.warning("not commissioned: %s: %s", item.what, item.line())
        self.guard = guard = await connect_inverter(
            inverter_settings(cfg.inverter, cfg.telemetry.ratings_interval_s)
        )
        self.inverter = inverter = ObservedInverter(guard)
        try:
            self.panel = Panel(cfg.gpio, self.led_state, self._on_press)
        except Exception as exc:  # no LED is no reason to leave the battery uncontrolled
            _LOGGER.error("status LED and button unavailable: %s", exc)
        # one reading now, so the status page and LED tell the installer about the inverter at once
        # (the sampler's first tick may be 30 s away); a dead inverter is shown, not fatal
        with contextlib.suppress(Exception):
            await asyncio.wait_for(inverter.read_telemetry(), 3)
        if self.panel is not None and await self.panel.held_at_power_on():
            await asyncio.to_thread(self.reset_state)
        # opened (and repaired or migrated) once here, before the parts share it; never fatal
        try:
            self.store = open_store(cfg.state_dir)
        except StoreUnavailable as exc:
            _LOGGER.error("state database unavailable, controlling from memory: %s", exc)
        # the poller beats under the server's health name, also while it waits between polls; one
        # discovery walk over a slow server may take minutes (each request may take 20 s), hence
        # a longer allowance than the local loops get
        sup.add("link", self._link, LINK_MAX_SILENCE_S, heartbeat=SERVER_PART)
        if lfdi is not None and not self.missing:  # a box not commissioned never drives the battery
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
            )
            # a changed rating is obeyed at once, not at the next re-assertion
            guard.on_ratings_change(lambda _old, _new: engine.wake())
            sup.add("dispatch", self._dispatch)
            sup.add("control", engine.run, MAX_SILENCE_S)
            sup.add("telemetry", lambda: self._telemetry(inverter, lfdi), MAX_SILENCE_S)
            fetch_server = server_cert_fetch(self.identity, cfg.server)
            sup.add("expiry", lambda: self.expiry.run(fetch_server=fetch_server))
            # the parts are cancelled first (telemetry commits its outbox as it stops), then this
            sup.on_shutdown("release the battery", engine.stop)
        if self.panel is not None:
            sup.add("panel", self.panel.run)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if cfg.status_page.enabled:
                    zone = page_zone(cfg.status_page.time_zone)
                    page = StatusPage(
                        self.status,
                        cfg.status_page.host,
                        cfg.status_page.port,
                        history=self.history,
                        zone=zone,
                    )
                    try:
                        self.status_page = await stack.enter_async_context(page)
                    except OSError as exc:  # e.g. the port is taken: the battery matters more
                        _LOGGER.error("status page unavailable on %s:%d: %s", page.host, page.port, exc)
                    sampler = asyncio.create_task(Sampler(self.history).run(self.status), name="history")
                    stack.push_async_callback(_cancelled, sampler)
                await sup.run_until_stopped()
        finally:
            if self._commissioning is not None:
                self._commissioning.cancel()
            await inverter.close()
            if self.store is not None:
                self.store.close()
            if self.panel is not None:
                self.panel.close()
            sup.notifier.close()
        return self.exit_status

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
        seconds = self.config.status_page.commissioning_s
        self.commissioning_until = time.monotonic() + seconds
        if self._commissioning is not None:
            self._commissioning.cancel()
        host = self.config.status_page.commissioning_host
        if self.status_page is not None:
            # the installer's phone is on the site network, not on this box's loopback
            await self.status_page.serve_on(host)
        _LOGGER.info("commissioning mode for %d s: status page on %s", seconds, host)
        self._commissioning = asyncio.create_task(self._end_commissioning(seconds))

    async def _end_commissioning(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.commissioning_until = None
        if self.status_page is not None:
            await self.status_page.serve_on(self.config.status_page.host)
        _LOGGER.info("commissioning mode ended")

    async def self_test(self) -> bool:
        """Quick on-box test: inverter answers now, server reachable and registered, certificate fine."""
        inverter_ok = False
        if self.inverter is not None:
            with contextlib.suppress(Exception):
                await self.inverter.read_telemetry()
                inverter_ok = True
        tree = self.server.tree
        server_ok = tree is not None and tree.registered and SERVER_PART not in self.health.problems()
        return inverter_ok and server_ok and self.expiry.error is None

    def reset_state(self) -> None:
        """Forget the gateway's state (outbox, control ledger, saved links); never the identity, and
        never the updater's folder (root's, and a reset must not undo an update in progress)."""
        state_dir = self.config.state_dir
        # "ota": root's update state before it moved out of this folder (the gateway cannot delete it)
        keep = {state_dir / "identity", self.config.ota.state_dir, state_dir / "ota"}
        for entry in state_dir.iterdir() if state_dir.is_dir() else ():
            if entry in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        _LOGGER.warning("state reset by the button: everything but the identity was removed")


def run(config: Config, config_path: Path | None = None) -> int:
    """Run the whole gateway from `config` (read from `config_path`) until SIGTERM; the exit status."""
    return asyncio.run(Gateway(config, config_path=config_path).run())


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has stopped."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """A file's mtime and size, to notice a change (None: absent or not watched)."""
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st is not None else None


def _load_links(path: Path) -> TelemetryLinks | None:
    """The telemetry links an older release saved in its own file, or None."""
    try:
        return _parse_links(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def _parse_links(text: str) -> TelemetryLinks | None:
    try:
        return TelemetryLinks(**json.loads(text))
    except (ValueError, TypeError):
        return None


def _in_force(plan: Plan | None) -> str | None:
    """What the status page says is in force: the events by mRID, else the default control."""
    if plan is None:
        return None
    if plan.in_force:
        return "event " + ", ".join(sorted(set(plan.in_force.values())))
    if plan.default is not None and plan.power is not None:
        return f"default control {plan.default.mRID}"
    return None


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None
