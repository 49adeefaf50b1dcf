"""The telemetry service in a process of its own, for the kill -9 test (`-m tests.telemetry.child JSON`).

It runs on a simulated clock that pauses for real between steps, so the parent can SIGKILL it in
the middle of delivering a backlog.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from app.config import Config, ServerConfig
from app.health import Health
from app.telemetry import TelemetryLinks, TelemetryService
from hal.inverter import BatterySpec
from tests.telemetry.conftest import polling
from tests.telemetry.simclock import SimClock
from wattsmart_lab.sim import SimInverter


async def main(args: dict[str, object]) -> None:
    start = datetime.fromisoformat(str(args["start"]))
    clock = SimClock(start, real_pause_s=float(args["real_pause_s"]))  # type: ignore[arg-type]
    server = ServerConfig(
        dcap_url=str(args["dcap_url"]),
        ca_file=Path(str(args["ca_file"])),
        cert_file=Path(str(args["cert_file"])),
        key_file=Path(str(args["key_file"])),
        request_timeout_s=5.0,
    )
    config = Config(server=server, state_dir=Path(str(args["state_dir"])))
    links = TelemetryLinks(**args["links"])  # type: ignore[arg-type]
    inverter = SimInverter(BatterySpec(), wall_clock=clock.now)
    async with polling(server, clock) as http:
        service = TelemetryService(
            config,
            inverter,
            http,
            links,
            clock,
            Health(),
            str(args["lfdi"]),
            max_readings_per_post=int(args["max_batch"]),  # type: ignore[call-overload]
        )
        task = asyncio.create_task(service.run())
        print("running", flush=True)
        await clock.run_until(start + timedelta(days=1), timeout_s=60)
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
