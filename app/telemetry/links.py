"""Where the telemetry reports to: the hrefs discovery found for our device, kept across restarts."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from app.client.snapshot import ServerTree
from app.control.schedule import default_control
from app.store import Store, StoreUnavailable

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TelemetryLinks:
    """The hrefs discovery found for our device; a None link means that report is not sent (yet).

    Without a MirrorUsagePointList the DER reports still go out; readings wait in the outbox.
    """

    mirror_usage_points: str | None
    der_capability: str | None = None
    der_settings: str | None = None
    der_status: str | None = None
    der_availability: str | None = None
    set_grad_w: int = 0
    """Not a link: the setGradW of the DefaultDERControl in force (the one the control engine obeys),
    which DERSettings reports; it follows every snapshot, and a restart, with the links."""

    @classmethod
    def from_tree(cls, tree: ServerTree) -> TelemetryLinks | None:
        """The links in a discovery snapshot; None while the server offers nowhere to report to."""
        der = tree.der

        def href(link: object | None) -> str | None:
            return getattr(link, "href", None)

        default = default_control(tree.programs)
        links = cls(
            mirror_usage_points=tree.mirror_usage_point_list_href,
            der_capability=href(der.DERCapabilityLink) if der else None,
            der_settings=href(der.DERSettingsLink) if der else None,
            der_status=href(der.DERStatusLink) if der else None,
            der_availability=href(der.DERAvailabilityLink) if der else None,
            set_grad_w=(default.setGradW or 0) if default is not None else 0,
        )
        reports = (
            links.mirror_usage_points,
            links.der_capability,
            links.der_settings,
            links.der_status,
            links.der_availability,
        )
        return links if any(reports) else None


#: the links in the store, so a restart during an outage goes on sampling into the outbox
LINKS_KEY = "telemetry:links"
#: where a box of the old layout kept them (moved into the store once)
LINKS_FILE = "telemetry-links.json"


class SavedLinks:
    """The links the last run saw, kept in the store (written only when the server moves them: rare)."""

    def __init__(self, store: Store | None, state_dir: Path) -> None:
        self._store = store
        self._legacy = state_dir / LINKS_FILE
        self._saved: TelemetryLinks | None = None

    def save(self, links: TelemetryLinks) -> None:
        """Keep `links` (nothing is written when they did not change)."""
        if self._store is None or links == self._saved:
            return
        self._saved = links  # tried once per change: a store in trouble is not asked again and again
        try:
            self._store.state.set(LINKS_KEY, json.dumps(dataclasses.asdict(links)))
        except StoreUnavailable as exc:
            _LOGGER.warning("telemetry links not saved: %s", exc)

    def load(self) -> TelemetryLinks | None:
        """The links saved by an earlier run (moving them in from the old layout's file), or None."""
        if self._store is None:
            return None
        try:
            text = self._store.state.get(LINKS_KEY)
        except StoreUnavailable as exc:
            _LOGGER.warning("telemetry links not read: %s", exc)
            return None
        if text is None and self._legacy.exists():
            try:
                links = _parse(self._legacy.read_text(encoding="utf-8"))
            except OSError:
                links = None
            if links is not None:
                self.save(links)
            self._legacy.unlink(missing_ok=True)
            return links
        self._saved = _parse(text) if text is not None else None
        return self._saved


def _parse(text: str) -> TelemetryLinks | None:
    try:
        return TelemetryLinks(**json.loads(text))
    except (ValueError, TypeError):
        return None
