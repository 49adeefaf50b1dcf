"""Supervisor: crashed parts restart alone, the watchdog pings only while critical loops beat."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from app.health import Health, Kind
from app.supervisor import Notifier, Supervisor, watchdog_interval_s


class RecordingNotifier(Notifier):
    """A Notifier backend that keeps the messages instead of sending them to systemd."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def send(self, message: str) -> None:
        self.messages.append(message)


async def test_crashing_part_restarts_with_backoff_and_others_keep_running() -> None:
    runs: list[str] = []
    sup = Supervisor(notifier=RecordingNotifier(), first_restart_delay_s=0.01)

    async def flaky() -> None:
        runs.append("flaky")
        raise RuntimeError("boom")

    async def steady() -> None:
        while True:
            runs.append("steady")
            await asyncio.sleep(0.005)

    sup.add("flaky", flaky)
    sup.add("steady", steady)
    sup.start()
    await asyncio.sleep(0.2)
    await sup.stop()
    flaky_runs = runs.count("flaky")
    # 0.01, 0.02, 0.04, 0.08 s of backoff fit in 0.2 s: 4-5 runs, not hundreds.
    assert 3 <= flaky_runs <= 6
    assert runs.count("steady") > 10
    assert sup.parts["flaky"].restarts == flaky_runs
    assert "flaky" in sup.health.problems() and sup.health.kind("flaky") is Kind.SOFTWARE
    assert all(p.task is not None and p.task.done() for p in sup.parts.values())


async def test_a_restarted_part_that_keeps_running_is_healthy_again() -> None:
    runs = 0
    sup = Supervisor(notifier=RecordingNotifier(), first_restart_delay_s=0.01, stable_after_s=0.1)

    async def crashes_once() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    sup.add("flaky", crashes_once)
    sup.start()
    await asyncio.sleep(0.05)
    assert "flaky" in sup.health.problems() and sup.health.kind("flaky") is Kind.SOFTWARE
    assert sup.crash_looping(count=1) == ["flaky"]
    await asyncio.sleep(0.15)
    assert sup.health.problems() == {}
    assert sup.crash_looping() == []  # one crash is not a loop
    await sup.stop()


async def test_a_part_in_restart_backoff_is_not_hung() -> None:
    now = [0.0]
    sup = Supervisor(
        health=Health(monotonic=lambda: now[0]), notifier=RecordingNotifier(), first_restart_delay_s=0.05
    )

    async def cannot_start() -> None:
        now[0] += 100  # each failed attempt "takes" 100 s of the health clock
        raise OSError("certificate unreadable")

    sup.add("session", cannot_start, max_silence_s=150, heartbeat="2030.5 server")
    sup.start()
    await asyncio.sleep(0.3)
    assert sup.critical_stale() == []  # crashing and retrying, but not hung: systemd must not kill us
    await sup.stop()


async def test_watchdog_withholds_pings_while_a_critical_loop_is_hung() -> None:
    now = [0.0]
    notifier = RecordingNotifier()
    sup = Supervisor(health=Health(monotonic=lambda: now[0]), notifier=notifier)
    sup.add("control", asyncio.Event().wait, max_silence_s=30)
    sup.add("session", asyncio.Event().wait, max_silence_s=300, heartbeat="2030.5 server")
    sup.health.beat("control")
    sup.health.beat("2030.5 server")
    sup.health.problem("session", "server unreachable", Kind.SERVER)  # degraded is not hung: pings go on
    dog = asyncio.create_task(sup.watchdog(0.01))
    await asyncio.sleep(0.05)
    assert "WATCHDOG=1" in notifier.messages
    assert "STATUS=degraded: session: server unreachable" in notifier.messages
    now[0] = 31.0  # control has not beaten for 31 s
    await asyncio.sleep(0.02)
    notifier.messages.clear()
    await asyncio.sleep(0.05)
    assert "WATCHDOG=1" not in notifier.messages
    sup.health.beat("control")
    await asyncio.sleep(0.05)
    assert "WATCHDOG=1" in notifier.messages
    now[0] = 400.0  # the poller's heartbeat is what counts for "session"
    sup.health.beat("control")
    assert sup.critical_stale() == ["session"]
    sup.health.beat("2030.5 server")
    assert sup.critical_stale() == []
    dog.cancel()
    await asyncio.gather(dog, return_exceptions=True)


async def test_shutdown_hooks_run_in_order_within_budget() -> None:
    done: list[str] = []
    sup = Supervisor(notifier=RecordingNotifier())

    async def release() -> None:
        done.append("release")

    async def flush() -> None:
        done.append("flush")

    sup.on_shutdown("release battery", release)
    sup.on_shutdown("flush outbox", flush)
    sup.add("idle", asyncio.Event().wait)
    sup.start()
    await sup.stop()
    assert done == ["release", "flush"]


def test_watchdog_interval_from_environment() -> None:
    pid = str(os.getpid())
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "junk"}) is None


def test_notifier_talks_to_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notifier = Notifier()
        notifier.send("READY=1")
        notifier.status("ok")
        notifier.status("ok")  # unchanged: not sent again
        sock.settimeout(1)
        assert sock.recv(100) == b"READY=1"
        assert sock.recv(100) == b"STATUS=ok"
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(100)
        notifier.close()


def test_notifier_never_blocks_when_nobody_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notifier = Notifier()
        started = time.monotonic()
        for _ in range(1000):  # far beyond the datagram queue (net.unix.max_dgram_qlen)
            notifier.send("WATCHDOG=1")
        assert time.monotonic() - started < 1.0  # a blocking socket would hang here for good
        assert sock.recv(100) == b"WATCHDOG=1"  # the first ones did arrive
        notifier.close()
