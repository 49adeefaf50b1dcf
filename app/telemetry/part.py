"""The telemetry as the gateway runs it: started on the links last seen, following the snapshots."""

from __future__ import annotations

import asyncio
import random

from app.client.notices import Notices
from app.client.port import ServerPort
from app.config import Config
from app.health import Health
from app.meter import ObservedMeter
from app.store import Store
from app.telemetry.links import SavedLinks, TelemetryLinks
from app.telemetry.service import PART, TelemetryService
from app.telemetry.timebase import ServerTimebase
from hal.inverter.base import BatteryInverter

#: while no links are known, the server's snapshot is looked at this often
WAIT_FOR_LINKS_S = 5.0


class TelemetryPart:
    """`run()` is the supervised "telemetry" part, `dispatch()` hands it each snapshot's links."""

    def __init__(
        self,
        config: Config,
        inverter: BatteryInverter,
        server: ServerPort,
        health: Health,
        lfdi: str,
        store: Store | None,
        *,
        rng: random.Random,
        notices: Notices,
        meter: ObservedMeter | None = None,
    ) -> None:
        self._config = config
        self._inverter = inverter
        self._server = server
        self._health = health
        self._lfdi = lfdi
        self._rng = rng
        self._notices = notices
        #: the site meter, mirrored as one more point
        self._meter = meter
        self._saved = SavedLinks(store, config.state_dir)
        #: the running service (None until links are known)
        self.service: TelemetryService | None = None

    def _current(self) -> TelemetryLinks | None:
        tree = self._server.tree
        return TelemetryLinks.from_tree(tree) if tree is not None else None

    async def run(self) -> None:
        """Run the service on the links last seen (a restart during an outage keeps sampling), or,
        on a box that has never reached the server, once discovery finds our DER or mirror links."""
        links = self._saved.load()
        while links is None:
            links = self._current()
            if links is None:
                self._health.beat(PART)
                await asyncio.sleep(WAIT_FOR_LINKS_S)
        self.service = TelemetryService(
            self._config,
            self._inverter,
            self._server,
            links,
            ServerTimebase(self._server.now),
            self._health,
            self._lfdi,
            rng=self._rng,
            notices=self._notices,
            meter=self._meter,
        )
        # a snapshot published before the service existed was not handed to it by `dispatch`
        current = self._current()
        if current is not None:
            self.service.update_links(current)
        await self.service.run()

    async def dispatch(self) -> None:
        """Hand each new snapshot's links to the service, and keep them (control follows the
        snapshots itself)."""
        async for tree in self._server.snapshots():
            links = TelemetryLinks.from_tree(tree)
            if links is None:
                continue
            if self.service is not None:
                self.service.update_links(links)
            self._saved.save(links)
