"""DERCapability and DERSettings: built from the inverter's ratings, PUT at start-up and on change."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from app.client.errors import Rejected
from app.sep.der import DERCapability, DERSettings
from app.telemetry.der import Nameplate, der_capability, der_settings, missing_fields, nameplate
from app.telemetry.uplink import TelemetryLinks, Uplink
from hal.inverter import Ratings

_LOGGER = logging.getLogger(__name__)

_EPOCH: Final = datetime.fromtimestamp(0, UTC)


class NameplateReporter:
    """Keeps the server's DERCapability and DERSettings equal to the inverter's current values."""

    def __init__(
        self, uplink: Uplink, links: TelemetryLinks, overrides: Ratings | None, set_grad_w: int
    ) -> None:
        self._uplink = uplink
        self.links = links
        self._overrides = overrides
        self._set_grad_w = set_grad_w
        self._plate: Nameplate | None = None
        self._updated = _EPOCH
        self._sent_capability: DERCapability | None = None
        self._sent_settings: DERSettings | None = None
        self._overridden: list[str] = []
        self._missing: list[str] = []

    @property
    def known(self) -> bool:
        """True once ratings have been read."""
        return self._plate is not None

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

    async def send(self) -> None:
        """PUT whichever of DERCapability and DERSettings the server does not have yet."""
        if self._plate is None:
            return
        capability, settings = self._documents(self._plate)
        if capability is None or settings is None:
            _LOGGER.debug("rtgMaxW/setMaxW unknown: DERCapability/DERSettings cannot be sent")
        if self.links.der_capability and capability is not None and capability != self._sent_capability:
            await self._put(self.links.der_capability, capability)
            self._sent_capability = capability
        if self.links.der_settings and settings is not None and settings != self._sent_settings:
            await self._put(self.links.der_settings, settings)
            self._sent_settings = settings

    async def _put(self, href: str, document: object) -> None:
        try:
            await self._uplink.put(href, document)
        except Rejected as exc:
            # The same document would be refused again: say so once, send again only on a change.
            _LOGGER.error("Server refused %s: %s", type(document).__name__, exc)

    def _documents(self, plate: Nameplate) -> tuple[DERCapability | None, DERSettings | None]:
        settings = der_settings(plate, self._updated, self._set_grad_w)
        return der_capability(plate), settings
