"""The status document (the status page and /api/status) and the LED's conditions, read from the
running gateway's parts; no secrets, and nothing that talks to the server or the inverter."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Protocol

from app import __version__
from app.client.clock import ServerClock
from app.client.notices import Notices
from app.client.poller import SERVER_PART
from app.client.port import ServerPort
from app.commissioning.events import describe_default, describe_events
from app.commissioning.led import Conditions, led_state
from app.commissioning.missing import SECTION, Missing, status_section
from app.commissioning.mode import CommissioningMode
from app.config import Config
from app.control.engine import ControlEngine
from app.control.schedule import Plan
from app.health import Health
from app.identity import ExpiryWatch, IdentityStore, identity_status
from app.identity.trial import CertificateTrial
from app.meter import ObservedMeter
from app.ota.state import is_updating
from app.store import Store
from app.supervisor import Supervisor
from app.telemetry.part import TelemetryPart
from hal.gpio import LedState
from hal.inverter import SafeInverter
from hal.inverter.site import SiteInverter


class Box(Protocol):
    """The running gateway's parts the report reads (`app.gateway.Gateway` is one)."""

    @property
    def config(self) -> Config: ...
    @property
    def health(self) -> Health: ...
    @property
    def supervisor(self) -> Supervisor: ...
    @property
    def identity(self) -> IdentityStore: ...
    @property
    def expiry(self) -> ExpiryWatch: ...
    @property
    def certificate(self) -> CertificateTrial: ...
    @property
    def missing(self) -> list[Missing]: ...
    @property
    def mode(self) -> CommissioningMode: ...
    @property
    def server(self) -> ServerPort: ...
    @property
    def server_clock(self) -> ServerClock: ...
    @property
    def notices(self) -> Notices: ...
    @property
    def engine(self) -> ControlEngine | None: ...
    @property
    def inverter(self) -> SafeInverter | None: ...
    @property
    def meter(self) -> ObservedMeter | None: ...
    @property
    def telemetry(self) -> TelemetryPart | None: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def started(self) -> float: ...


def conditions(box: Box) -> Conditions:
    """What the LED decides from, now."""
    tree = box.server.tree
    inverter = box.inverter
    return Conditions(
        fault=bool(box.supervisor.crash_looping()) or bool(box.expiry.error and not box.missing),
        not_commissioned=bool(box.missing),
        commissioning=box.mode.active,
        updating=is_updating(box.config.ota.state_dir),
        server_problem=box.health.kind(SERVER_PART),
        registered=tree.registered if tree is not None else None,
        inverter_failing=inverter is None or inverter.failure is not None,
        attention=bool(box.expiry.attention or box.health.problems() or _data_problems(box)),
    )


def box_led(box: Box) -> LedState:
    """The status LED's state for the running gateway."""
    return led_state(conditions(box))


def status(box: Box) -> dict[str, Any]:
    """Everything the status page and /api/status show (no secrets)."""
    tree, server_clock = box.server.tree, box.server_clock
    problems = box.health.problems()
    kinds = box.health.kinds()
    led = box_led(box)
    data_problems = _data_problems(box)
    state = "fault" if led is LedState.FAULT else "degraded" if problems or data_problems else "ok"
    if box.missing:
        state = "not commissioned"
    inv = box.inverter
    sample = inv.telemetry if inv is not None else None
    plan = box.engine.plan if box.engine is not None else None
    ident: dict[str, Any]
    try:
        ident = identity_status(box.identity, box.expiry)
    except Exception as exc:  # the page must render even without an identity
        ident = {"error": str(exc)}
    if box.certificate.problem:
        ident = {"problem": f"{box.certificate.problem}; install one with `wattsmart-gateway identity`"}
    return {
        "state": state,
        "led": led.name,
        **({SECTION: status_section(box.missing, box.certificate.cert)} if box.missing else {}),
        "identity": ident,
        "server": {
            "url": box.config.server.dcap_url,
            "connected": tree is not None and SERVER_PART not in problems,
            "registered": tree.registered if tree is not None else None,
            "last read": tree.read_at.isoformat() if tree is not None and tree.read_at else None,
            "programs": len(tree.programs) if tree is not None else None,
            "clock offset s": round(server_clock.offset.total_seconds()) if server_clock.synced else None,
            "bounded inputs": list(box.notices.current().values()) or None,
        },
        "control": {
            "in force": _in_force(plan),
            "next change": _iso(plan.next_change) if plan else None,
            "setpoint W": inv.setpoint_w if inv is not None else None,
            "responses waiting": box.engine.responses_waiting if box.engine is not None else None,
            "mode": "utility setpoint" if inv is not None and inv.setpoint_w is not None else "battery's own",
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
            **_limits(box.inverter),
        },
        **_site(box),
        "telemetry": _telemetry(box),
        "storage": box.store.status() if box.store is not None else {"problem": "not open"},
        "problems": {
            "current": [{"part": k, "kind": kinds.get(k), "problem": v} for k, v in sorted(problems.items())]
            or None,
            "recent": [
                {"part": e.part, "kind": e.kind, "problem": e.problem} for e in list(box.health.recent)[-5:]
            ],
        },
        "versions": {"gateway": __version__, "uptime s": round(time.monotonic() - box.started)},
    }


def _data_problems(box: Box) -> dict[str, str]:
    """What the guard does not trust in the inverter's data (ratings, SoC, readings), in words; on a
    site also each inverter that does not answer (degraded: the others carry on)."""
    problems = dict(box.inverter.problems) if box.inverter is not None else {}
    site = _site_inverter(box)
    if site is not None:
        problems.update(site.problems)
    return problems


def _site_inverter(box: Box) -> SiteInverter | None:
    inner = box.inverter.inner if box.inverter is not None else None
    return inner if isinstance(inner, SiteInverter) else None


def _site(box: Box) -> dict[str, Any]:
    """Each inverter of a site and the site meter (nothing with one inverter and no meter)."""
    site = _site_inverter(box)
    if site is None and box.meter is None:
        return {}
    return {
        "site": {
            "inverters": site.status() if site is not None else None,
            "meter": box.meter.status() if box.meter is not None else "not configured (meter)",
        }
    }


def _limits(guard: SafeInverter | None) -> dict[str, Any]:
    ratings = guard.ratings if guard is not None else None
    plate = guard.nameplate if guard is not None else None
    return {
        "max discharge W": ratings.discharge_limit_w() if ratings else None,
        "max charge W": ratings.charge_limit_w() if ratings else None,
        "nameplate W": f"{plate.max_discharge_w:g} discharge / {plate.max_charge_w:g} charge"
        if plate
        else "not configured (inverter.nameplate)",
    }


def _telemetry(box: Box) -> dict[str, Any]:
    service = box.telemetry.service if box.telemetry is not None else None
    if service is None:
        if box.certificate.lfdi is None:
            return {"state": "waiting for a client certificate"}
        return {"state": "waiting for the server's DER or mirror links"}
    return {"interval s": box.config.telemetry.interval_s, **service.status()}


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
