"""`make run`: the whole system on loopback, narrated.

A local 2030.5 server (mutual TLS) with a short demo schedule, a simulated SunSpec battery on
Modbus TCP, and the gateway between them, all on 127.0.0.1. Everything it writes (test PKI,
configuration, gateway state) lives in `./run/`. Ctrl-C stops everything cleanly.

    python -m wattsmart_lab.demo [--folder run] [--lead 20] [--site] [-v]

With `--site` (`make run SITE=1`): two simulated inverters (5 kW and 3 kW) and a SunSpec site meter
on one Modbus TCP endpoint (unit ids 1, 2 and 10), a household load that runs through a day in six
minutes, and one more event: a discharge held to a 1 kW export limit at the connection point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from app.config import load_config
from app.gateway import Gateway
from app.sep.der import DefaultDERControl, DERControlBase
from app.sep.types import ActivePower
from hal.inverter.battery import BatterySpec
from hal.modbus import quiet_library_logging
from wattsmart_lab import pki as lab_pki
from wattsmart_lab.gateway_config import lab_config, write_lab_config
from wattsmart_lab.meter_sim import household_load_w
from wattsmart_lab.server import LabServer
from wattsmart_lab.sunspec_server import SunSpecServer

_LOGGER = logging.getLogger("demo")

#: the lab tree's "Wattsmart contracted" program (primacy 1)
CONTRACTED_PROGRAM = 1
#: the site demo's meter unit id, and its day (a household's day in six minutes)
SITE_METER = 10
SITE_DAY_S = 360.0
#: the site demo's export limit at the connection point, W
SITE_EXPORT_LIMIT_W = 1000.0
#: what the response codes the demo shows mean (2030.5-2018 Table 27)
RESPONSES = {1: "received", 2: "started", 3: "completed", 6: "cancelled", 7: "superseded"}


def _pki(folder: Path) -> lab_pki.Pki:
    """A fresh lab PKI in `folder` (a test CA: nothing outside this machine trusts it)."""
    return lab_pki.generate(folder / "pki")


def schedule(server: LabServer, lead_s: float) -> tuple[list[str], dict[str, str]]:
    """The demo schedule: charge at −50 %, then discharge at 3 kW, then the default control."""
    tree = server.tree
    now = tree.now().replace(microsecond=0)
    first = now + timedelta(seconds=lead_s)
    second = first + timedelta(seconds=75)
    charge = tree.add_control(CONTRACTED_PROGRAM, start=first, duration=60, fixed_w=-5000)
    discharge = tree.add_control(CONTRACTED_PROGRAM, start=second, duration=60, target_w=3000.0)
    tree.set_default_control(
        CONTRACTED_PROGRAM,
        DefaultDERControl(
            mRID="D" * 32,
            description="demo default: 10 % discharge",
            DERControlBase=DERControlBase(opModFixedW=1000),
            setGradW=1000,
        ),
    )
    lines = [
        f"{first:%H:%M:%S} 'charge': −50 % of the inverter's max charge rate for 60 s (opModFixedW)",
        f"{second:%H:%M:%S} 'discharge': 3000 W for 60 s (opModTargetW)",
        "otherwise the default control: 10 % discharge, ramped (DefaultDERControl, setGradW)",
    ]
    return lines, {charge.mRID: "charge", discharge.mRID: "discharge"}


def site_schedule(server: LabServer, lead_s: float) -> tuple[list[str], dict[str, str]]:
    """The site demo's schedule: the demo schedule, then a discharge held to an export limit."""
    lines, names = schedule(server, lead_s)
    tree = server.tree
    third = tree.now().replace(microsecond=0) + timedelta(seconds=lead_s + 150)
    base = DERControlBase(
        opModTargetW=ActivePower.from_watts(8000), opModExpLimW=ActivePower.from_watts(SITE_EXPORT_LIMIT_W)
    )
    limited = tree.add_control(CONTRACTED_PROGRAM, start=third, duration=90, base=base)
    lines.append(
        f"{third:%H:%M:%S} 'export limit': 8000 W, site export at most {SITE_EXPORT_LIMIT_W:.0f} W "
        "(opModExpLimW, held at the meter)"
    )
    return lines, {**names, limited.mRID: "export limit"}


def write_site_config(
    path: Path, server: LabServer, modbus_port: int, state_dir: Path, status_port: int
) -> Path:
    """The lab configuration with two inverters (`inverter:` a list) and the site meter."""
    data = lab_config(server, modbus_port, state_dir, status_port=status_port, log_level="WARNING")
    first = {**data["inverter"], "unit_id": 1, "revert_timeout_s": 120}
    data["inverter"] = [first, {"unit_id": 2}]
    data["meter"] = {"unit_id": SITE_METER}
    text = "# A two-inverter site with a meter on one simulated Modbus endpoint (make run SITE=1).\n"
    path.write_text(text + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Narrator:
    """Prints one line per interesting change: what a new user wants to see happen."""

    def __init__(self, gateway: Gateway, server: LabServer, names: dict[str, str]) -> None:
        self.gateway = gateway
        self.server = server
        self.names = names
        self._seen: dict[str, object] = {}
        self._pending: float | None = None
        self._pending_since = 0.0

    def _say(self, text: str) -> None:
        print(f"{datetime.now(UTC):%H:%M:%S}  {text}", flush=True)

    def _changed(self, key: str, value: object) -> bool:
        if self._seen.get(key, object()) == value:
            return False
        self._seen[key] = value
        return True

    def step(self) -> None:
        """Look once and report what changed."""
        gw, tree = self.gateway, self.server.tree
        link_tree = gw.server.tree
        if self._changed("registered", link_tree is not None and link_tree.registered) and link_tree:
            self._say(f"gateway found its EndDevice; {len(link_tree.programs)} DER programs")
        inv = gw.inverter
        setpoint = inv.setpoint_w if inv is not None else None
        # a ramp writes a new value every second: report where it settles, not every step
        if setpoint != self._pending:
            self._pending, self._pending_since = setpoint, time.monotonic()
        elif time.monotonic() - self._pending_since >= 1.5 and self._changed("setpoint", setpoint):
            if setpoint is None:
                self._say("battery in its own mode (no utility setpoint)")
            else:
                verb = "discharge" if setpoint > 0 else "charge" if setpoint < 0 else "hold"
                self._say(f"setpoint written to the inverter: {setpoint:+.0f} W ({verb})")
            self._site_line()
        done = int(str(self._seen.get("responses", 0)))
        for response in tree.responses[done:]:
            meaning = RESPONSES.get(response.status or 0, "")
            name = self.names.get(response.subject, response.subject)
            self._say(f"gateway answered '{name}': {response.status} {meaning}")
        self._seen["responses"] = len(tree.responses)
        readings = len(tree.readings)
        if readings != self._seen.get("readings", 0):
            sample = inv.telemetry if inv is not None else None
            extra = ""
            if sample is not None and sample.w is not None and sample.hz is not None:
                extra = f" (now {sample.w:+.0f} W, {sample.hz:.2f} Hz, SoC {sample.soc_pct or 0:.1f} %)"
            self._say(f"readings posted to the server: {readings} posts so far{extra}")
            self._seen["readings"] = readings
        problems = gw.health.problems()
        if self._changed("problems", sorted(problems)):
            for part, reason in sorted(problems.items()):
                self._say(f"problem: {part}: {reason}")

    def _site_line(self) -> None:
        """On a site: each inverter's share and the meter's export."""
        site = self.gateway.status().get("site")
        if not isinstance(site, dict):
            return
        parts = [
            f"{m['name']} {m['share W'] or 0:+.0f} W"
            for m in site.get("inverters") or ()
            if isinstance(m, dict)
        ]
        meter = site.get("meter")
        if isinstance(meter, dict) and meter.get("site export W") is not None:
            parts.append(f"site export {meter['site export W']:+.0f} W")
        if parts:
            self._say("  site: " + ", ".join(parts))

    async def run(self) -> None:
        """Look twice a second until cancelled."""
        while True:
            self.step()
            await asyncio.sleep(0.5)


async def demo(folder: Path, lead_s: float, status_port: int, site: bool = False) -> int:
    """Run the lab until SIGINT/SIGTERM."""
    pki = await asyncio.to_thread(_pki, folder)
    # A fresh lab server numbers its controls from 1 again: an old run's ledger would take them for
    # events it has already answered, so each run starts from a clean state folder.
    await asyncio.to_thread(shutil.rmtree, folder / "state", True)
    started = time.monotonic()
    big = BatterySpec(max_w=5000, max_charge_w=5000, max_discharge_w=5000)
    small = BatterySpec(max_w=3000, max_charge_w=3000, max_discharge_w=3000, capacity_wh=6000, seed=1)
    simulator = (
        SunSpecServer.site(
            [big, small], meter_id=SITE_METER, load=lambda t: household_load_w(t, day_s=SITE_DAY_S)
        )
        if site
        else SunSpecServer(big)
    )
    async with LabServer(pki) as server, simulator as battery:
        if site:
            config_path = write_site_config(
                folder / "gateway.yaml", server, battery.port, folder / "state", status_port
            )
        else:
            config_path = write_lab_config(
                folder / "gateway.yaml",
                server,
                battery.port,
                folder / "state",
                status_port=status_port,
                inverter={"revert_timeout_s": 120},
                log_level="WARNING",
            )
        config = load_config(config_path)
        print(f"2030.5 server   {server.dcap_url}  (mutual TLS, test CA in {folder / 'pki'})")
        print(f"battery (sim)   modbus tcp 127.0.0.1:{battery.port}, SunSpec 1/701/702/704/713")
        if site:
            print(f"site            units 1 (5 kW) and 2 (3 kW), SunSpec meter 203 at unit {SITE_METER}")
        print(f"status page     http://127.0.0.1:{status_port}/   (JSON: /api/status)")
        print(f"configuration   {config_path}")
        print("schedule:")
        lines, names = (site_schedule if site else schedule)(server, lead_s)
        for line in lines:
            print(f"  {line}")
        print("Ctrl-C stops everything.\n", flush=True)
        gateway = Gateway(config)
        narrator = Narrator(gateway, server, names)
        task = asyncio.create_task(gateway.run())
        talk = asyncio.create_task(narrator.run())
        try:
            status = await task
        finally:
            talk.cancel()
            await asyncio.gather(talk, return_exceptions=True)
            if not task.done():
                task.cancel()
            narrator.step()
    print(f"\nstopped cleanly after {time.monotonic() - started:.0f} s; the battery was released.")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("run"), help="where PKI, config and state go")
    parser.add_argument("--lead", type=float, default=20.0, help="seconds until the first event starts")
    parser.add_argument("--status-port", type=int, default=8080)
    parser.add_argument("--site", action="store_true", help="two inverters and a site meter on one bus")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the gateway's own INFO log")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    quiet_library_logging()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(demo(args.folder.resolve(), args.lead, args.status_port, args.site))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())
