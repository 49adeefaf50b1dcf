"""CSIP-AUS extension elements (csipaus namespace): read in DERControlBase, written in DERCapability."""

from __future__ import annotations

from app.sep import parse, to_xml
from app.sep.der import DERCapability, DERControlBase
from app.sep.types import CSIPAUS_NS, NS, ActivePower
from app.telemetry.der import der_capability, nameplate
from hal.inverter import Ratings

RATINGS = Ratings(max_w=5000, max_charge_w=4600, max_discharge_w=5000, energy_capacity_wh=13500)


def control_base(ns: str) -> bytes:
    return (
        f'<DERControlBase xmlns="{NS}" xmlns:c="{ns}"><opModMaxLimW>5000</opModMaxLimW>'
        "<c:opModImpLimW><multiplier>0</multiplier><value>0</value></c:opModImpLimW>"
        "<c:opModExpLimW><multiplier>2</multiplier><value>15</value></c:opModExpLimW>"
        "<c:opModStorageTargetW><multiplier>0</multiplier><value>1</value></c:opModStorageTargetW>"
        "<other xmlns='urn:x'>ignored</other></DERControlBase>"
    ).encode()


def test_limits_are_read_in_the_current_and_the_older_namespace() -> None:
    for ns in CSIPAUS_NS:
        base = parse(DERControlBase, control_base(ns))
        assert base.opModExpLimW == ActivePower(multiplier=2, value=15)
        assert base.opModImpLimW is not None and base.opModImpLimW.watts == 0
        assert base.opModMaxLimW == 5000 and base.opModGenLimW is None


def test_limits_round_trip_with_the_csipaus_prefix_and_sep_children() -> None:
    base = DERControlBase(opModGenLimW=ActivePower(multiplier=0, value=3000))
    xml = to_xml(base)
    assert (
        f'<csipaus:opModGenLimW xmlns:csipaus="{CSIPAUS_NS[0]}"><multiplier>0</multiplier>'
        "<value>3000</value></csipaus:opModGenLimW>"
    ).encode() in xml
    assert parse(DERControlBase, xml) == base


def test_doe_modes_supported_only_under_csip_aus() -> None:
    plate = nameplate(RATINGS, None)
    plain = der_capability(plate)
    aus = der_capability(plate, "csip-aus")
    assert plain is not None and aus is not None
    assert plain.doeModesSupported is None and b"csipaus" not in to_xml(plain)
    assert aus.doeModesSupported == 0x0F
    xml = to_xml(aus)
    assert xml.endswith(
        f'<type>80</type><csipaus:doeModesSupported xmlns:csipaus="{CSIPAUS_NS[0]}">0F'
        "</csipaus:doeModesSupported></DERCapability>".encode()
    )
    assert parse(DERCapability, xml) == aus
