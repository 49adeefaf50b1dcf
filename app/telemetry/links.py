"""Where the telemetry reports to: the hrefs discovery found for our device."""

from __future__ import annotations

from dataclasses import dataclass

from app.client.snapshot import ServerTree
from app.control.schedule import default_control


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
