"""`python -m wattsmart_lab.sunspec_server`: the standalone simulator used by the demo."""

from __future__ import annotations

import asyncio
import re
import sys

from hal.inverter import InverterSettings, open_inverter
from hal.modbus import TcpSettings
from tests.hal.conftest import FAST_BUS


async def test_standalone_server_serves_sunspec() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wattsmart_lab.sunspec_server",
        "--port",
        "0",
        "--soc",
        "80",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        port = 0
        async with asyncio.timeout(20):
            while not port:
                line = (await proc.stderr.readline()).decode()
                assert line, "server exited before listening"
                if match := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                    port = int(match.group(1))
        settings = InverterSettings(transport="tcp", tcp=TcpSettings("127.0.0.1", port), bus=FAST_BUS)
        async with open_inverter(settings, auto_keepalive=False) as inverter:
            assert (await inverter.read_telemetry()).soc_pct == 80.0
    finally:
        proc.terminate()
        await proc.wait()
