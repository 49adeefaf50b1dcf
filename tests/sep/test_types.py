"""Units, time and the writer's details: what the rest of the gateway relies on from app.sep."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.sep import parse, to_xml
from app.sep.der import DERControlType, DERSettings
from app.sep.error import Error, ReasonCode
from app.sep.metering_mirror import MirrorUsagePoint, RoleFlags
from app.sep.response import DERControlResponse, ResponseStatus
from app.sep.tm import Time
from app.sep.types import (
    ActivePower,
    ApparentPower,
    DateTimeInterval,
    ListLink,
    WattHour,
    hundredths,
    percent,
    time_from_int,
    time_to_int,
)
from tests.sep import documents


@pytest.mark.parametrize(
    ("multiplier", "value", "watts"),
    [(0, 5000, 5000.0), (3, -5, -5000.0), (-3, 50012, 50.012), (1, 32767, 327670.0), (-9, 1, 1e-9)],
)
def test_active_power_watts(multiplier: int, value: int, watts: float) -> None:
    assert ActivePower(multiplier=multiplier, value=value).watts == pytest.approx(watts)


@pytest.mark.parametrize(
    ("watts", "expected"),
    [
        (5000, ActivePower(multiplier=0, value=5000)),
        (-32768, ActivePower(multiplier=0, value=-32768)),
        (50000, ActivePower(multiplier=1, value=5000)),
        (-50000, ActivePower(multiplier=1, value=-5000)),
        (1_234_567, ActivePower(multiplier=2, value=12346)),
    ],
)
def test_active_power_from_watts_fits_int16(watts: float, expected: ActivePower) -> None:
    assert ActivePower.from_watts(watts) == expected


def test_unsigned_quantities_fit_uint16() -> None:
    assert WattHour.from_real(13500) == WattHour(multiplier=0, value=13500)
    assert WattHour.from_real(135_000) == WattHour(multiplier=1, value=13500)
    assert ApparentPower.from_real(65535).value == 65535
    with pytest.raises(ValueError, match="does not fit WattHour"):
        WattHour.from_real(-1)


def test_percent_helpers() -> None:
    assert percent(-5000) == -50.0
    assert hundredths(27.5) == 2750
    assert hundredths(-100) == -10000


def test_time_type_is_aware_utc() -> None:
    body = to_xml(documents.time_resource())
    parsed = parse(Time, body)
    assert parsed.currentTime == documents.NOW
    assert parsed.currentTime.tzinfo is UTC
    assert time_from_int(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_other_timezones_are_written_as_the_same_instant() -> None:
    brisbane = timezone(timedelta(hours=10))
    assert time_to_int(documents.NOW.astimezone(brisbane)) == time_to_int(documents.NOW)


def test_naive_datetime_is_refused_on_write() -> None:
    naive = documents.NOW.replace(tzinfo=None)
    with pytest.raises(ValueError, match="naive datetime"):
        to_xml(DERControlResponse(createdDateTime=naive, endDeviceLFDI=documents.LFDI, subject="01"))


def test_interval_end() -> None:
    assert DateTimeInterval(duration=1800, start=documents.NOW).end == documents.NOW + timedelta(minutes=30)


def test_models_are_frozen_and_slotted() -> None:
    link = ListLink(href="/edev", all=1)
    with pytest.raises(FrozenInstanceError):
        link.href = "/x"  # type: ignore[misc]
    assert not hasattr(link, "__dict__")


def test_hex_bitmaps_are_ints_written_at_full_width() -> None:
    mup = documents.mirror_usage_point_power()
    assert mup.roleFlags == RoleFlags.IS_MIRROR | RoleFlags.IS_DER | RoleFlags.IS_SUBMETER == 0x49
    assert b"<roleFlags>0049</roleFlags>" in to_xml(mup)
    settings = documents.der_settings()
    assert b"<modesEnabled>00000083</modesEnabled>" in to_xml(settings)
    assert parse(DERSettings, to_xml(settings)).modesEnabled == 0x83
    assert parse(DERSettings, to_xml(settings)).modesEnabled & DERControlType.FIXED_W


def test_enums_are_written_as_numbers() -> None:
    body = to_xml(Error(reasonCode=ReasonCode.RESOURCE_LIMIT_REACHED))
    assert body == b'<Error xmlns="urn:ieee:std:2030.5:ns"><reasonCode>2</reasonCode></Error>'
    response = documents.der_control_response(ResponseStatus.REJECTED_EXPIRED)
    assert b"<status>254</status>" in to_xml(response)


def test_response_element_order_and_namespace() -> None:
    body = to_xml(documents.der_control_response())
    assert body.startswith(b'<DERControlResponse xmlns="urn:ieee:std:2030.5:ns">')
    positions = [
        body.index(f"<{name}>".encode()) for name in ("createdDateTime", "endDeviceLFDI", "status", "subject")
    ]
    assert positions == sorted(positions)


def test_text_and_attributes_are_escaped() -> None:
    mup = MirrorUsagePoint(
        href='/mup?a=1&b="2"',
        mRID="01",
        description="<W> & more",
        roleFlags=1,
        serviceCategoryKind=0,
        status=1,
        deviceLFDI=documents.LFDI,
    )
    body = to_xml(mup)
    assert b'href="/mup?a=1&amp;b=&quot;2&quot;"' in body
    assert b"<description>&lt;W&gt; &amp; more</description>" in body
    assert parse(MirrorUsagePoint, body) == mup


def test_default_attributes_are_omitted_and_restored() -> None:
    body = to_xml(documents.end_device())
    assert b"subscribable" not in body
    assert parse(type(documents.end_device()), body).subscribable == 0
    assert b'subscribable="1"' in to_xml(documents.end_device_list())


def test_absent_poll_rate_is_none() -> None:
    body = b'<Time xmlns="urn:ieee:std:2030.5:ns"><currentTime>1</currentTime><dstEndTime>1</dstEndTime>'
    body += b"<dstOffset>0</dstOffset><dstStartTime>0</dstStartTime><quality>4</quality>"
    body += b"<tzOffset>0</tzOffset></Time>"
    assert parse(Time, body).pollRate is None


def test_to_xml_refuses_non_models() -> None:
    with pytest.raises(TypeError, match=r"not a 2030\.5 model"):
        to_xml({"mRID": "01"})
    with pytest.raises(TypeError, match=r"not a 2030\.5 model"):
        to_xml(Time)
