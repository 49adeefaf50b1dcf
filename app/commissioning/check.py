"""`wattsmart-gateway check`: the installer's self-test, one line per check with a fix for each failure.

Checks run in order and later checks are skipped when what they need failed (no point trying the
server without a readable certificate). On a box where the gateway is running, the inverter and
the pins belong to it: those checks then report what the running gateway sees (its status page)
instead of opening a second Modbus master on the RS-485 line or taking over the LED.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.client.errors import NotAuthorized, Reconfigure, SepError, TlsHandshakeError
from app.client.session import Session
from app.client.snapshot import ServerTree
from app.commissioning.panel import gpio_settings
from app.config import Config, ConfigError, load_config
from app.identity import ExpiryLevel, expiry_level
from app.identity.verify import public_der
from app.sep.identity import lfdi_from_der, sfdi_from_lfdi
from app.site import connect_configured, open_meter
from hal.errors import HalError
from hal.gpio import open_gpio
from hal.inverter.site import SiteInverter

#: A box whose clock reads earlier than this has no RTC and no NTP yet: TLS and schedules would fail.
CLOCK_FLOOR = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: `ok` None means skipped."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    def line(self) -> str:
        """One checklist line: mark, name, detail, and the fix when it failed."""
        mark = {True: "✓", False: "✗", None: "–"}[self.ok]
        text = f"{mark} {self.name}: {self.detail}"
        return f"{text}\n    fix: {self.fix}" if self.ok is False and self.fix else text


@dataclass
class Context:
    """What earlier checks learnt, for the later ones."""

    config_path: Path
    now: datetime
    config: Config | None = None
    cert: x509.Certificate | None = None
    extra: dict[str, object] = field(default_factory=dict)


Check = Callable[[Context], Awaitable[CheckResult]]


async def check_config(ctx: Context) -> CheckResult:
    """The configuration file loads and validates."""
    try:
        ctx.config = load_config(ctx.config_path)
    except ConfigError as exc:
        return CheckResult("configuration", False, str(exc), "edit the file; the message names the key")
    return CheckResult("configuration", True, f"{ctx.config_path} is valid")


async def check_certificate(ctx: Context) -> CheckResult:
    """Client certificate and key are readable, belong together and are in date."""
    name = "client certificate"
    if ctx.config is None:
        return CheckResult(name, None, "skipped (no valid configuration)")
    server = ctx.config.server
    try:
        pem = server.cert_file.read_bytes()
        cert = (
            x509.load_pem_x509_certificate(pem)
            if b"-----BEGIN" in pem
            else x509.load_der_x509_certificate(pem)
        )
    except OSError as exc:
        return CheckResult(name, False, f"cannot read {server.cert_file}: {exc.strerror}", _INSTALL_FIX)
    except ValueError:
        return CheckResult(name, False, f"{server.cert_file} is not an X.509 certificate", _INSTALL_FIX)
    try:
        key = serialization.load_pem_private_key(server.key_file.read_bytes(), password=None)
    except OSError as exc:
        return CheckResult(name, False, f"cannot read {server.key_file}: {exc.strerror}", _INIT_FIX)
    except (ValueError, TypeError):
        return CheckResult(name, False, f"{server.key_file} is not an unencrypted private key", _INIT_FIX)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        detail = "the key is not P-256 (IEEE 2030.5 requires ECDSA secp256r1)"
        return CheckResult(name, False, detail, _INIT_FIX)
    if public_der(key.public_key()) != public_der(cert):
        return CheckResult(name, False, "the certificate does not belong to the key", _INSTALL_FIX)
    ctx.cert = cert
    if ctx.now < cert.not_valid_before_utc:
        return CheckResult(name, False, f"not valid before {cert.not_valid_before_utc:%Y-%m-%d}", _CLOCK_FIX)
    not_after = cert.not_valid_after_utc
    level = expiry_level(not_after, ctx.now)
    if level is ExpiryLevel.EXPIRED:
        return CheckResult(name, False, f"expired on {not_after:%Y-%m-%d}", _INSTALL_FIX)
    detail = f"{cert.subject.rfc4514_string() or '(empty subject)'}, valid until {not_after:%Y-%m-%d}"
    ctx.extra["cert usable"] = True
    if level is ExpiryLevel.WARNING:
        days = (not_after - ctx.now).days
        return CheckResult(name, False, f"{detail}: expires in {days} days", _RENEW_FIX)
    return CheckResult(name, True, detail)


async def check_identity(ctx: Context) -> CheckResult:
    """The LFDI and SFDI the utility must have registered for this box."""
    if ctx.cert is None:
        return CheckResult("LFDI/SFDI", None, "skipped (no usable certificate)")
    lfdi = lfdi_from_der(ctx.cert.public_bytes(serialization.Encoding.DER))
    ctx.extra["lfdi"] = lfdi
    return CheckResult("LFDI/SFDI", True, f"LFDI {lfdi}, SFDI {sfdi_from_lfdi(lfdi)}")


async def check_wall_clock(ctx: Context) -> CheckResult:
    """The system clock is plausible (TLS validity and schedules depend on it)."""
    if ctx.now < CLOCK_FLOOR:
        return CheckResult("clock", False, f"reads {ctx.now:%Y-%m-%d %H:%M} UTC", _CLOCK_FIX)
    return CheckResult("clock", True, f"{ctx.now:%Y-%m-%d %H:%M:%S} UTC")


async def check_server(ctx: Context) -> CheckResult:
    """One discovery walk over mutual TLS: the server answers and lists our EndDevice."""
    name = "2030.5 server"
    if ctx.config is None or not ctx.extra.get("cert usable"):
        return CheckResult(name, None, "skipped (needs a valid configuration and a usable certificate)")
    server = ctx.config.server
    try:
        async with Session(server) as session:
            tree = await session.discovery.walk()
    except TlsHandshakeError as exc:
        return CheckResult(name, False, str(exc), "check server.ca_file and that the utility trusts our CA")
    except NotAuthorized as exc:
        return CheckResult(name, False, str(exc), "give the utility the LFDI/SFDI above for registration")
    except Reconfigure as exc:
        return CheckResult(name, False, str(exc), "fix the server section of the configuration")
    except SepError as exc:
        fix = f"check the network and that {server.dcap_url} is the right URL"
        return CheckResult(name, False, str(exc), fix)
    ctx.extra["tree"] = tree
    return CheckResult(name, True, f"{server.dcap_url} answered over mutual TLS")


async def check_registered(ctx: Context) -> CheckResult:
    """Our EndDevice is on the server (the utility registered our LFDI/SFDI out of band)."""
    tree = ctx.extra.get("tree")
    if not isinstance(tree, ServerTree):
        return CheckResult("registration", None, "skipped (server not reached)")
    if tree.end_device is None:
        fix = f"ask the utility to register LFDI {ctx.extra.get('lfdi')}"
        return CheckResult("registration", False, "our EndDevice is not on the server", fix)
    programs = len(tree.programs)
    return CheckResult("registration", True, f"EndDevice {tree.end_device.href}, {programs} DER programs")


def running_gateway(config: Config) -> dict[str, Any] | None:
    """The running gateway's /api/status, or None when no gateway answers on this box."""
    page = config.status_page
    if not page.enabled:
        return None
    host = "127.0.0.1" if page.host in ("0.0.0.0", "::") else page.host  # noqa: S104
    try:
        with urllib.request.urlopen(f"http://{host}:{page.port}/api/status", timeout=2) as reply:
            data = json.loads(reply.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def _live(ctx: Context) -> dict[str, Any] | None:
    if "live" not in ctx.extra:
        ctx.extra["live"] = await asyncio.to_thread(running_gateway, ctx.config) if ctx.config else None
    live = ctx.extra["live"]
    return live if isinstance(live, dict) else None


async def check_inverter(ctx: Context) -> CheckResult:
    """The inverter answers, with plausible ratings and telemetry; its ratings beside the nameplate."""
    name = "inverter"
    if ctx.config is None:
        return CheckResult(name, None, "skipped (no valid configuration)")
    fix = "check the profile, or write the battery's nameplate in inverter.nameplate"
    live = await _live(ctx)
    if live is not None:
        inv = live.get("inverter", {})
        untrusted = inv.get("data not trusted")
        if inv.get("reachable") and inv.get("frequency Hz") is not None and not untrusted:
            detail = (
                f"seen by the running gateway: {inv.get('power W') or 0:+.0f} W, "
                f"{inv['frequency Hz']:.2f} Hz, {inv.get('state of charge %') or 0:.0f} %; limits "
                f"{inv.get('max discharge W')} W discharge / {inv.get('max charge W')} W charge; "
                f"nameplate {inv.get('nameplate W')}"
            )
            return CheckResult(name, True, detail)
        if untrusted and inv.get("reachable"):
            return CheckResult(
                name, False, f"the running gateway does not trust: {'; '.join(untrusted)}", fix
            )
        problem = inv.get("problem") or "no reading yet"
        return CheckResult(name, False, f"the running gateway cannot read it: {problem}", _inverter_fix(ctx))
    try:
        # one inverter, or a site of several (each read; one that does not answer is named below)
        inverter = await connect_configured(ctx.config)
        try:
            ratings = await inverter.read_ratings()
            sample = await inverter.read_telemetry()
        finally:
            await inverter.close()
    except HalError as exc:
        return CheckResult(name, False, str(exc) or type(exc).__name__, _inverter_fix(ctx))
    reported = inverter.reported
    plate = inverter.nameplate
    beside = (
        f"inverter reports {_watts(reported.discharge_limit_w() if reported else None)} discharge / "
        f"{_watts(reported.charge_limit_w() if reported else None)} charge; nameplate "
        + (f"{plate.max_discharge_w:.0f} W / {plate.max_charge_w:.0f} W" if plate else "not configured")
        + f"; setpoints limited to {_watts(ratings.discharge_limit_w())} / {_watts(ratings.charge_limit_w())}"
    )
    problems = dict(inverter.problems)
    if isinstance(inverter.inner, SiteInverter):
        problems.update(inverter.inner.problems)
        beside = f"{len(inverter.inner.members)} inverters on the bus; {beside}"
    if problems:
        return CheckResult(name, False, f"{'; '.join(problems.values())} ({beside})", fix)
    if sample.hz is None or not 45 <= sample.hz <= 65 or sample.soc_pct is None:
        got = f"{sample.hz} Hz, state of charge {sample.soc_pct}"
        return CheckResult(name, False, f"implausible telemetry: {got}", "check the profile")
    detail = f"{beside}; now {sample.w or 0:+.0f} W, {sample.hz:.2f} Hz, {sample.soc_pct:.0f} %"
    return CheckResult(name, True, detail)


def _watts(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} W"


def _inverter_fix(ctx: Context) -> str:
    assert ctx.config is not None
    cfg = ctx.config.inverter
    if cfg.transport == "rtu":
        port = cfg.serial
        return f"check the RS-485 wiring, {port.port}, {port.baudrate} baud and unit id {cfg.unit_id}"
    return f"check that {cfg.host}:{cfg.port} is the inverter and unit id {cfg.unit_id} is right"


async def check_meter(ctx: Context) -> CheckResult:
    """The site meter (when one is configured) answers with the site's net power."""
    name = "site meter"
    if ctx.config is None:
        return CheckResult(name, None, "skipped (no valid configuration)")
    if ctx.config.meter is None:
        return CheckResult(name, True, "none configured (meter)")
    fix = f"check the meter's unit id ({ctx.config.meter.unit_id}) and that it is on the inverters' bus"
    live = await _live(ctx)
    if live is not None:
        seen = live.get("site", {}).get("meter", {})
        if isinstance(seen, dict) and seen.get("reachable"):
            return CheckResult(
                name, True, f"seen by the running gateway: {seen.get('site export W')} W export"
            )
        problem = seen.get("problem") if isinstance(seen, dict) else None
        return CheckResult(
            name, False, f"the running gateway cannot read it: {problem or 'no reading yet'}", fix
        )
    meter = open_meter(ctx.config)
    if meter is None:
        return CheckResult(name, None, "skipped (a simulated inverter has no bus for a meter)")
    try:
        reading = await meter.read()
    except HalError as exc:
        return CheckResult(name, False, str(exc) or type(exc).__name__, fix)
    finally:
        await meter.close()
    if reading.export_w is None:
        return CheckResult(name, False, "the meter reports no power (not implemented?)", "check the profile")
    return CheckResult(name, True, f"site exports {reading.export_w:+.0f} W now")


async def check_gpio(ctx: Context) -> CheckResult:
    """The status LED and button pins can be opened."""
    if ctx.config is None:
        return CheckResult("LED and button", None, "skipped (no valid configuration)")
    live = await _live(ctx)
    if live is not None:
        return CheckResult("LED and button", True, f"in use by the running gateway (LED: {live.get('led')})")
    settings = gpio_settings(ctx.config.gpio)
    if settings is None:
        return CheckResult("LED and button", True, "none configured (gpio.backend: none)")
    try:
        gpio = open_gpio(settings)
    except Exception as exc:  # RPi.GPIO raises RuntimeError and ImportError for missing hardware
        fix = "run on the Pi as a member of the gpio group, or set gpio.backend: none"
        return CheckResult("LED and button", False, f"cannot open the pins: {exc}", fix)
    if gpio is None:
        fix = "on a Pi: check that /dev/gpiochip-header exists; elsewhere set gpio.backend: none"
        return CheckResult("LED and button", False, "no GPIO found (gpio.backend: auto)", fix)
    gpio.close()
    return CheckResult("LED and button", True, f"{gpio.backend!r}")


_INIT_FIX = "run `wattsmart-gateway identity init`, then have the CA sign the CSR"
_INSTALL_FIX = "install a current certificate with `wattsmart-gateway identity install CERT`"
_RENEW_FIX = "prepare a new key with `wattsmart-gateway identity init` and install the renewed certificate"
_CLOCK_FIX = "connect the box to a network with NTP (timedatectl status shows the sync state)"

DEFAULT_CHECKS: list[Check] = [
    check_config,
    check_wall_clock,
    check_certificate,
    check_identity,
    check_server,
    check_registered,
    check_inverter,
    check_meter,
    check_gpio,
]


async def run_checks(
    config_path: Path, checks: list[Check], now: datetime | None = None
) -> list[CheckResult]:
    """Run `checks` in order, each bounded in time; return every result."""
    ctx = Context(config_path, now or datetime.now(UTC))
    results = []
    for check in checks:
        try:
            result = await asyncio.wait_for(check(ctx), 30)
        except TimeoutError:
            name = check.__name__.removeprefix("check_").replace("_", " ")
            result = CheckResult(name, False, "did not finish within 30 s", "see the gateway's log")
        results.append(result)
    return results
