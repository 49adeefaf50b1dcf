"""TelemetryLinks from a discovery snapshot: the hrefs, and the setGradW that DERSettings reports."""

from __future__ import annotations

from app.client.identity import DeviceIdentity
from app.client.snapshot import ProgramBranch, ServerTree
from app.sep.dcap import DeviceCapability
from app.sep.der import DER, DefaultDERControl, DERControlBase, DERProgram
from app.sep.types import Link
from app.telemetry import TelemetryLinks

LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"


def branch(primacy: int, grad: int | None, *, default: bool = True) -> ProgramBranch:
    program = DERProgram(href=f"/derp/{primacy}", mRID=f"{primacy:02X}", primacy=primacy)
    control = DefaultDERControl(
        href=f"/derp/{primacy}/dderc", mRID=f"D{primacy:02X}", DERControlBase=DERControlBase(), setGradW=grad
    )
    return ProgramBranch(program, default_control=control if default else None)


def tree(*programs: ProgramBranch, mirrors: str | None = "/mup") -> ServerTree:
    der = DER(
        href="/edev/0/der/0",
        DERCapabilityLink=Link(href="/edev/0/der/0/dercap"),
        DERSettingsLink=Link(href="/edev/0/der/0/derg"),
        DERStatusLink=Link(href="/edev/0/der/0/ders"),
    )
    return ServerTree(
        identity=DeviceIdentity(LFDI, 0),
        device_capability=DeviceCapability(href="/dcap"),
        programs=programs,
        ders=(der,),
        mirror_usage_point_list_href=mirrors,
    )


def test_links_carry_the_set_grad_w_of_the_default_control_in_force() -> None:
    # the highest-priority program that has a default control: the one the control engine obeys
    links = TelemetryLinks.from_tree(tree(branch(1, None, default=False), branch(3, 250), branch(2, 1000)))
    assert links is not None
    assert links.der_settings == "/edev/0/der/0/derg"
    assert links.set_grad_w == 1000
    no_default = TelemetryLinks.from_tree(tree(branch(1, 500, default=False)))
    assert no_default is not None and no_default.set_grad_w == 0
    absent = TelemetryLinks.from_tree(tree(branch(1, None)))
    assert absent is not None and absent.set_grad_w == 0


def test_der_links_without_a_mirror_list_are_links() -> None:
    links = TelemetryLinks.from_tree(tree(mirrors=None))
    assert links is not None
    assert links.mirror_usage_points is None and links.der_status == "/edev/0/der/0/ders"
    bare = ServerTree(identity=DeviceIdentity(LFDI, 0), device_capability=DeviceCapability(href="/dcap"))
    assert TelemetryLinks.from_tree(bare) is None  # nowhere to report to yet
