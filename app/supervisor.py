"""The supervisor: owns every long-running part, restarts a crashed one, feeds the systemd watchdog.

systemd contract (deploy/wattsmart-gateway.service is Type=notify with WatchdogSec):
- READY=1 once config, hardware and the local listener are up; never waits for the utility.
- WATCHDOG=1 every WatchdogSec/2, but only while every critical part has beaten within its own
  allowance: a hung loop stops the pings and systemd restarts us; an unreachable server or
  inverter does not (that is "degraded": STATUS= and the LED say so).
- SIGTERM: stop the parts, run the shutdown hooks (release the battery, flush the outbox), exit 0
  well within TimeoutStopSec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app import memory
from app.health import Health, Kind

_LOGGER = logging.getLogger(__name__)

#: Restart backoff for a crashed part: first retry after 1 s, doubling up to this cap.
MAX_RESTART_DELAY_S = 60.0
#: The shutdown hooks together get this long; systemd's TimeoutStopSec is larger.
SHUTDOWN_BUDGET_S = 8.0


class Notifier:
    """sd_notify messages; silent when not run by systemd (no NOTIFY_SOCKET)."""

    def __init__(self) -> None:
        self._notifier = None
        if os.environ.get("NOTIFY_SOCKET"):
            import sdnotify  # the package reads NOTIFY_SOCKET itself

            self._notifier = sdnotify.SystemdNotifier()
            sock = getattr(self._notifier, "socket", None)
            if sock is not None:
                # never block the event loop on a busy notify socket: a lost ping is harmless,
                # a frozen loop is not (sdnotify swallows the EAGAIN)
                sock.setblocking(False)
        self._last_status = ""

    def send(self, message: str) -> None:
        """Send one sd_notify message."""
        if self._notifier is not None:
            self._notifier.notify(message)

    def close(self) -> None:
        """Close the notification socket."""
        sock = getattr(self._notifier, "socket", None)
        if sock is not None:
            sock.close()
        self._notifier = None

    def status(self, text: str) -> None:
        """Send STATUS= only when it changed (each message wakes systemd)."""
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")


def watchdog_interval_s(environ: dict[str, str] | os._Environ[str] = os.environ) -> float | None:
    """Half of systemd's WatchdogSec, or None when no watchdog is armed for this process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.5)
    except ValueError:
        return None


@dataclass
class Part:
    """One supervised long-running coroutine."""

    name: str
    factory: Callable[[], Awaitable[None]]
    #: a critical part must beat at least this often, or the watchdog pings stop
    max_silence_s: float | None
    #: the Health name its loop beats under (default: the part's own name)
    heartbeat: str = ""
    restarts: int = 0
    recent_restarts: deque[float] = field(default_factory=lambda: deque(maxlen=10))
    task: asyncio.Task[None] | None = None


@dataclass
class Supervisor:
    """Owns the parts' tasks; `run_until_stopped` is the gateway's main loop."""

    health: Health = field(default_factory=Health)
    notifier: Notifier = field(default_factory=Notifier)
    rng: random.Random = field(default_factory=random.Random)
    parts: dict[str, Part] = field(default_factory=dict)
    shutdown_hooks: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    first_restart_delay_s: float = 1.0
    #: a restarted part that runs this long is marked healthy again
    stable_after_s: float = 60.0

    def add(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        max_silence_s: float | None = None,
        *,
        heartbeat: str = "",
    ) -> None:
        """Register a part; `max_silence_s` makes it critical for the watchdog."""
        self.parts[name] = Part(name, factory, max_silence_s, heartbeat or name)

    def on_shutdown(self, name: str, hook: Callable[[], Awaitable[None]]) -> None:
        """Register a hook run on stop, in registration order (e.g. release the battery)."""
        self.shutdown_hooks.append((name, hook))

    def start(self) -> None:
        """Start every registered part; a critical part's allowance counts from now."""
        for part in self.parts.values():
            if part.max_silence_s is not None:
                self.health.beat(part.heartbeat)
            part.task = asyncio.create_task(self._guard(part), name=part.name)

    async def _guard(self, part: Part) -> None:
        """Run a part; when it crashes or returns, restart it with backoff, leaving the others alone."""
        delay = self.first_restart_delay_s
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            started = time.monotonic()
            # a restarted part that keeps running is healthy again (the LED must not stay red)
            healed = loop.call_later(self.stable_after_s, self._healed, part) if part.restarts else None
            try:
                await part.factory()
                reason = "stopped unexpectedly"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"crashed: {exc!r}"
                _LOGGER.exception("%s crashed", part.name)
            finally:
                if healed is not None:
                    healed.cancel()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > 10 * MAX_RESTART_DELAY_S:
                delay = (
                    self.first_restart_delay_s
                )  # it ran fine for a long time: this is a new problem, not a loop
            part.restarts += 1
            part.recent_restarts.append(time.monotonic())
            self.health.problem(
                part.name, f"{reason}; restart #{part.restarts} in {delay:.0f} s", Kind.SOFTWARE
            )
            # waiting to restart is not being hung: keep the watchdog fed through the backoff
            self.health.beat(part.heartbeat)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            self.health.beat(part.heartbeat)
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    def _healed(self, part: Part) -> None:
        self.health.ok(part.name)

    def crash_looping(self, within_s: float = 600.0, count: int = 3) -> list[str]:
        """Parts restarted `count` times within the last `within_s` seconds (a fault, not a hiccup)."""
        now = time.monotonic()
        return [
            p.name
            for p in self.parts.values()
            if sum(1 for t in p.recent_restarts if now - t < within_s) >= count
        ]

    def critical_stale(self) -> list[str]:
        """Critical parts that have not beaten within their allowance."""
        stale: list[str] = []
        for part in self.parts.values():
            if part.max_silence_s is not None and self.health.stale([part.heartbeat], part.max_silence_s):
                stale.append(part.name)
        return stale

    def status_text(self) -> str:
        """One line for systemd's STATUS= (shown by `systemctl status`)."""
        problems = self.health.problems()
        if not problems:
            return "ok"
        return "degraded: " + "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))

    async def watchdog(self, interval_s: float | None) -> None:
        """Ping systemd while healthy; keep STATUS= current."""
        tick = interval_s if interval_s is not None else 15.0
        warned = False
        while True:
            stale = self.critical_stale()
            if not stale:
                if interval_s is not None:
                    self.notifier.send("WATCHDOG=1")
                warned = False
            elif not warned:
                _LOGGER.error("watchdog pings withheld: %s not beating", ", ".join(stale))
                warned = True
            self.notifier.status(self.status_text())
            await asyncio.sleep(tick)

    async def run_until_stopped(self) -> None:
        """Start the parts and the watchdog, say READY, and wait for SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.start()
        dog = asyncio.create_task(self.watchdog(watchdog_interval_s()), name="watchdog")
        trim = asyncio.create_task(memory.keep_trimmed(), name="memory")
        self.notifier.send("READY=1")
        self.notifier.status(self.status_text())
        _LOGGER.info("ready")
        try:
            await self.stopping.wait()
        finally:
            self.notifier.send("STOPPING=1")
            _LOGGER.info("stopping")
            dog.cancel()
            trim.cancel()
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def stop(self) -> None:
        """Cancel every part, then run the shutdown hooks within the budget."""
        self.stopping.set()
        tasks = [p.task for p in self.parts.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        for name, hook in self.shutdown_hooks:
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(hook(), max(remaining, 0.1))
            except TimeoutError:
                _LOGGER.error("shutdown: %s did not finish in time", name)
            except Exception:
                _LOGGER.exception("shutdown: %s failed", name)
