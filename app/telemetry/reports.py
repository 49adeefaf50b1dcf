"""DERCapability and DERSettings: built from the inverter's ratings, PUT at start-up and on change."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Final

from app.client.errors import Rejected
from app.client.port import ServerPort
from app.health import Health
from app.sep.der import DERCapability, DERSettings
from app.telemetry.der import Nameplate, der_capability, der_settings, missing_fields, nameplate
from app.telemetry.links import TelemetryLinks
from hal.inverter import Ratings

_LOGGER = logging.getLogger(__name__)

_EPOCH: Final = datetime.fromtimestamp(0, UTC)
#: the status page's part for a DERCapability/DERSettings the server refused
PART: Final = "telemetry.nameplate"
#: a refused document, unchanged, is tried again after these waits (the server's operator may fix
#: their side), then only when the ratings or the configuration (a restart) change it
REFUSED_RETRY_S: Final = (3600.0, 6 * 3600.0, 24 * 3600.0)


class NameplateReporter:
    """Keeps the server's DERCapability and DERSettings equal to the inverter's current values."""

    def __init__(
        self,
        server: ServerPort,
        links: TelemetryLinks,
        overrides: Ratings | None,
        set_grad_w: int,
        health: Health | None = None,
        profile: str = "wattsmart",
    ) -> None:
        self._server = server
        self.links = links
        self._overrides = overrides
        self._set_grad_w = set_grad_w
        self._plate: Nameplate | None = None
        self._updated = _EPOCH
        self._sent_capability: DERCapability | None = None
        self._sent_settings: DERSettings | None = None
        self._overridden: list[str] = []
        self._missing: list[str] = []
        self._health = health
        self._profile = profile
        #: document name -> (the refused document, refusals in a row, when to try it again or None)
        self._refused: dict[str, tuple[object, int, datetime | None]] = {}

    @property
    def known(self) -> bool:
        """True once ratings have been read."""
        return self._plate is not None

    @property
    def plate(self) -> Nameplate | None:
        """The values last read (overrides applied), or None before the first read."""
        return self._plate

    @property
    def pending(self) -> bool:
        """True while the server has not taken the current values."""
        if self._plate is None:
            return False
        capability, settings = self._documents(self._plate)
        return (capability is not None and capability != self._sent_capability) or (
            settings is not None and settings != self._sent_settings
        )

    def update(self, ratings: Ratings, now: datetime) -> None:
        """Take freshly read ratings; values that changed are PUT by the next `send`."""
        own = nameplate(ratings, None)
        plate = nameplate(ratings, self._overrides)
        overridden = [f for f in missing_fields(own) if f not in missing_fields(plate)]
        if overridden != self._overridden:
            for name in overridden:
                _LOGGER.info(
                    "%s: the inverter does not report it; using the configured %s", name, getattr(plate, name)
                )
            self._overridden = overridden
        missing = missing_fields(plate)
        if missing != self._missing:
            if missing:
                _LOGGER.warning(
                    "The inverter reports no %s; left out of DERCapability/DERSettings", ", ".join(missing)
                )
            self._missing = missing
        if plate != self._plate:
            if self._plate is not None:
                _LOGGER.debug(
                    "DERCapability/DERSettings to be sent again: %s", plate
                )  # the guard said old → new
            self._plate = plate
            self._updated = now

    def set_grad_w(self, value: int, now: datetime) -> None:
        """A DefaultDERControl's setGradW (hundredths of a percent per second) updates DERSettings."""
        if value != self._set_grad_w:
            self._set_grad_w = value
            self._updated = now

    async def send(self, now: datetime | None = None) -> None:
        """PUT whichever of DERCapability and DERSettings the server does not have yet.

        A refused one (4xx) is sent again when it changes, and unchanged only after REFUSED_RETRY_S.
        """
        if self._plate is None:
            return
        if now is not None:
            self._retry_due(now)
        capability, settings = self._documents(self._plate)
        if capability is None or settings is None:
            _LOGGER.debug("rtgMaxW/setMaxW unknown: DERCapability/DERSettings cannot be sent")
        if self.links.der_capability and capability is not None and capability != self._sent_capability:
            await self._put(self.links.der_capability, capability, now)
            self._sent_capability = capability
        if self.links.der_settings and settings is not None and settings != self._sent_settings:
            await self._put(self.links.der_settings, settings, now)
            self._sent_settings = settings

    def _retry_due(self, now: datetime) -> None:
        for name, (document, count, again) in list(self._refused.items()):
            if again is not None and now >= again:
                self._refused[name] = (document, count, None)
                if name == "DERCapability":
                    self._sent_capability = None
                else:
                    self._sent_settings = None

    async def _put(self, href: str, document: object, now: datetime | None) -> None:
        name = type(document).__name__
        try:
            await self._server.put(href, document)
        except Rejected as exc:
            # The same document would be refused again: not at once, a few times spaced out.
            last = self._refused.get(name)
            count = last[1] + 1 if last is not None and last[0] == document else 1
            again = None
            if now is not None and count <= len(REFUSED_RETRY_S):
                again = now + timedelta(seconds=REFUSED_RETRY_S[count - 1])
            self._refused[name] = (document, count, again)
            when = f"trying again at {again:%Y-%m-%d %H:%M} UTC" if again is not None else "not again"
            _LOGGER.error(
                "Server refused %s: %s; %s unless the ratings or the configuration change it",
                name,
                exc,
                when,
            )
            if self._health is not None:
                self._health.problem(PART, f"server refused {name}: {exc}", exc.kind)
            return
        if self._refused.pop(name, None) is not None and not self._refused and self._health is not None:
            self._health.ok(PART)

    def _documents(self, plate: Nameplate) -> tuple[DERCapability | None, DERSettings | None]:
        settings = der_settings(plate, self._updated, self._set_grad_w, self._profile)
        return der_capability(plate, self._profile), settings
