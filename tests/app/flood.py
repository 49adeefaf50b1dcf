"""A connection flood, as a separate process: `python -m tests.app.flood PORT COUNT SECONDS`.

Keeps COUNT idle TCP connections open to 127.0.0.1:PORT for SECONDS, opening a new one (after 1 s)
whenever the server closes or resets one; prints how many connects it made and how many it held.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time


async def _hold(port: int, until: float, counts: dict[str, int]) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["failed"] += 1
            await asyncio.sleep(1)
            continue
        counts["connects"] += 1
        counts["open"] += 1
        try:
            await asyncio.wait_for(reader.read(), max(until - time.monotonic(), 0.01))
        except (OSError, TimeoutError):
            pass
        finally:
            counts["open"] -= 1
            writer.close()
        await asyncio.sleep(1)


async def _main(port: int, count: int, seconds: float) -> None:
    until = time.monotonic() + seconds
    counts = {"connects": 0, "failed": 0, "open": 0}
    await asyncio.gather(*(_hold(port, until, counts) for _ in range(count)))
    print(f"connects={counts['connects']} failed={counts['failed']}", flush=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    asyncio.run(_main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
