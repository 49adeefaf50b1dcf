"""The server port: what control and telemetry need of the 2030.5 server, and nothing else.

`app.client.server.Server` is the one implementation (the session in force, across certificate
switches); tests may pass anything of this shape. Importing this module loads no network code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Protocol, TypeVar

from app.client.snapshot import ServerTree

T = TypeVar("T")


class ServerPort(Protocol):
    """Snapshots in; GET, POST and PUT out; the server's time."""

    @property
    def tree(self) -> ServerTree | None:
        """The poller's latest snapshot (None before the first successful read)."""
        ...

    def snapshots(self) -> AsyncIterator[ServerTree]:
        """The current snapshot, then each changed one."""
        ...

    def now(self) -> datetime:
        """The server's time (aware UTC): every schedule decision uses this."""
        ...

    async def refresh(self, href: str) -> ServerTree | None:
        """Have the poller re-read `href` now (after a POST to it); the new snapshot."""
        ...

    async def get(self, href: str, cls: type[T], params: Mapping[str, str | int] | None = None) -> T:
        """GET one resource outside the polling schedule."""
        ...

    async def post(self, href: str, obj: object) -> str | None:
        """POST a model; the Location header, if any; raises (app.client.errors) when not taken."""
        ...

    async def put(self, href: str, obj: object) -> None:
        """PUT a model; raises (app.client.errors) when not taken."""
        ...
