"""Untrusted bodies: each hostile or broken input gives one clear SepParseError, never a crash."""

from __future__ import annotations

import pytest

from app.sep import MAX_BODY_BYTES, SepParseError, parse, to_xml
from app.sep.der import DERControl, DERControlList, DERStatus
from app.sep.tm import Time
from tests.sep import documents

NS_ATTR = 'xmlns="urn:ieee:std:2030.5:ns"'
TIME_FIELDS = (
    "<dstEndTime>1</dstEndTime><dstOffset>0</dstOffset><dstStartTime>0</dstStartTime>"
    "<quality>4</quality><tzOffset>0</tzOffset>"
)


def _time_with(current_time: str) -> bytes:
    return f"<Time {NS_ATTR}><currentTime>{current_time}</currentTime>{TIME_FIELDS}</Time>".encode()


def test_billion_laughs_is_refused() -> None:
    lols = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    body = f'<?xml version="1.0"?><!DOCTYPE Time [<!ENTITY lol0 "lol">{lols}]><Time {NS_ATTR}>&lol9;</Time>'
    with pytest.raises(SepParseError, match="DTD") as info:
        parse(Time, body.encode())
    assert info.value.resource == "Time"


def test_external_entity_is_refused() -> None:
    body = (
        '<?xml version="1.0"?><!DOCTYPE Time [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f"<Time {NS_ATTR}><currentTime>&x;</currentTime></Time>"
    )
    with pytest.raises(SepParseError, match="refused"):
        parse(Time, body.encode())


def test_external_dtd_is_refused() -> None:
    body = f'<!DOCTYPE Time SYSTEM "http://127.0.0.1:9/sep.dtd"><Time {NS_ATTR}/>'
    with pytest.raises(SepParseError, match="refused"):
        parse(Time, body.encode())


def test_ten_megabyte_body_is_refused_before_parsing() -> None:
    body = f"<Time {NS_ATTR}>".encode() + b" " * 10_000_000 + b"</Time>"
    with pytest.raises(SepParseError, match=f"over the {MAX_BODY_BYTES}-byte limit"):
        parse(Time, body)


def test_size_cap_is_adjustable() -> None:
    body = to_xml(documents.time_resource())
    with pytest.raises(SepParseError, match="byte limit"):
        parse(Time, body, max_bytes=len(body) - 1)
    assert parse(Time, body, max_bytes=len(body)) == documents.time_resource()


@pytest.mark.parametrize("inside_root", [True, False])
def test_ten_thousand_deep_nesting_is_refused(inside_root: bool) -> None:
    deep = "<a>" * 10_000 + "</a>" * 10_000
    body = f"<Time {NS_ATTR}>{deep}</Time>" if inside_root else deep
    with pytest.raises(SepParseError, match="nested deeper than"):
        parse(Time, body.encode())


def test_wrong_type_names_resource_and_field() -> None:
    with pytest.raises(SepParseError) as info:
        parse(Time, _time_with("yesterday"))
    assert (info.value.resource, info.value.field) == ("Time", "currentTime")
    assert "Time.currentTime" in str(info.value)
    assert "'yesterday'" in str(info.value)


@pytest.mark.parametrize("value", ["1_000", "", "12.5", "0x10", "9" * 5000, "99999999999999999999"])
def test_bad_integers_are_refused(value: str) -> None:
    with pytest.raises(SepParseError, match=r"Time\.currentTime"):
        parse(Time, _time_with(value))


# A bad DERControl inside a DERControlList stands in as an InvalidDERControl (tests/sep/test_salvage.py);
# the control read on its own (GET /derp/1/derc/1) is still refused whole.


def test_out_of_range_value_is_refused() -> None:
    body = to_xml(documents.der_control(0)).replace(b"<rampTms>600<", b"<rampTms>70000<")
    with pytest.raises(SepParseError) as info:
        parse(DERControl, body)
    assert info.value.resource == "DERControl/DERControlBase"
    assert info.value.field == "rampTms"
    assert "0..65535" in info.value.detail


def test_bad_boolean_and_hex_are_refused() -> None:
    body = to_xml(documents.der_control(1)).replace(b"<opModConnect>true<", b"<opModConnect>yes<")
    with pytest.raises(SepParseError, match=r"DERControl/DERControlBase\.opModConnect: expected a boolean"):
        parse(DERControl, body)
    body = to_xml(documents.der_control(0)).replace(b'responseRequired="03"', b'responseRequired="0G"')
    with pytest.raises(SepParseError, match=r"DERControl\.responseRequired: expected hexBinary"):
        parse(DERControl, body)


def test_missing_required_element_is_named() -> None:
    body = to_xml(documents.der_status()).replace(b"<readingTime>1795685400</readingTime>", b"")
    with pytest.raises(SepParseError) as info:
        parse(DERStatus, body)
    assert (info.value.resource, info.value.field, info.value.detail) == (
        "DERStatus",
        "readingTime",
        "required but missing",
    )


def test_missing_required_attribute_is_named() -> None:
    body = to_xml(documents.der_control_list(1)).replace(b' all="1"', b"")
    with pytest.raises(SepParseError, match=r"DERControlList\.all: required but missing"):
        parse(DERControlList, body)


def test_duplicated_single_element_is_refused() -> None:
    body = _time_with("1").replace(b"<quality>4</quality>", b"<quality>4</quality><quality>3</quality>")
    with pytest.raises(SepParseError, match=r"Time\.quality: appears more than once"):
        parse(Time, body)


def test_wrong_namespace_is_refused() -> None:
    body = _time_with("1").replace(b"urn:ieee:std:2030.5:ns", b"http://ieee.org/2030.5")
    with pytest.raises(SepParseError, match=r"not in the 2030\.5 namespace"):
        parse(Time, body)


def test_no_namespace_is_refused() -> None:
    with pytest.raises(SepParseError, match=r"not in the 2030\.5 namespace"):
        parse(Time, _time_with("1").replace(f" {NS_ATTR}".encode(), b""))


def test_wrong_root_element_is_refused() -> None:
    with pytest.raises(SepParseError, match=r"expected root element .*Time.*got .*DERStatus"):
        parse(Time, to_xml(documents.der_status()))


@pytest.mark.parametrize(
    "body", [b"", b"\x00\xff garbage", b"<Time", b"<a></b>", "<Time>\u0000</Time>".encode()]
)
def test_malformed_xml_is_refused(body: bytes) -> None:
    with pytest.raises(SepParseError, match="not well-formed XML"):
        parse(Time, body)


def test_unknown_and_foreign_elements_are_ignored() -> None:
    extra = (
        '<futureElement><deep attr="1">x</deep></futureElement>'
        '<vendor:opModExpLimW xmlns:vendor="urn:example:vendor">'
        "<multiplier>0</multiplier><value>1500</value></vendor:opModExpLimW>"
    )
    body = to_xml(documents.der_control_list(1)).replace(b"<rampTms>", extra.encode() + b"<rampTms>")
    assert parse(DERControlList, body) == documents.der_control_list(1)
    # the CSIP-AUS namespace is the one extension read (tests/sep/test_csipaus.py)
    csipaus = extra.replace("vendor", "csipaus").replace("urn:example:csipaus", "https://csipaus.org/ns")
    body = to_xml(documents.der_control_list(1)).replace(b"<rampTms>", csipaus.encode() + b"<rampTms>")
    limit = parse(DERControlList, body).DERControl[0].DERControlBase.opModExpLimW
    assert limit is not None and limit.watts == 1500


def test_unknown_attributes_are_ignored() -> None:
    body = to_xml(documents.der_control_list(1)).replace(b' all="1"', b' all="1" schemaVer="2.2" x:y="z"', 1)
    body = body.replace(NS_ATTR.encode(), NS_ATTR.encode() + b' xmlns:x="urn:x"', 1)
    assert parse(DERControlList, body) == documents.der_control_list(1)


def test_str_body_and_xml_declaration_are_accepted() -> None:
    body = '<?xml version="1.0" encoding="UTF-8"?>\n' + to_xml(documents.time_resource()).decode()
    assert parse(Time, body) == documents.time_resource()
