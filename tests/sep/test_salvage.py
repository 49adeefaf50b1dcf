"""One invalid DERControl in a DERControlList stands in as an InvalidDERControl; the list parses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated

import pytest

from app.sep import SepParseError, parse, to_xml
from app.sep import codec as codec_module
from app.sep.der import DERControl, DERControlBase, DERControlList, DERProgramList, InvalidDERControl
from app.sep.event import EventStatus
from app.sep.types import DateTimeInterval, Salvage
from tests.sep import documents

EPOCH = datetime.fromtimestamp(0, UTC)
GOOD = documents.der_control_list(3)
MIDDLE = GOOD.DERControl[1]
# the middle control's own start time: a unique anchor for breaking its text in place
MIDDLE_START = f"<start>{int(MIDDLE.interval.start.timestamp())}</start>".encode()
MIDDLE_INTERVAL = b"<interval><duration>1800</duration>" + MIDDLE_START + b"</interval>"


@pytest.fixture(autouse=True)
def _fresh_drop_memory() -> None:
    codec_module._dropped.clear()  # what earlier tests dropped must not silence these


def _with_middle(**changes: object) -> bytes:
    controls = list(GOOD.DERControl)
    controls[1] = replace(MIDDLE, **changes)  # type: ignore[arg-type]
    return to_xml(replace(GOOD, DERControl=tuple(controls)))


def _middle_edited(old: bytes, new: bytes) -> bytes:
    body = to_xml(GOOD)
    start = body.index(b"<DERControl ", body.index(b"</DERControl>"))
    end = body.index(b"</DERControl>", start)
    item = body[start:end]
    assert item.count(old) == 1, old
    return body[:start] + item.replace(old, new) + body[end:]


def _assert_others_intact(parsed: DERControlList) -> None:
    assert parsed.DERControl[0] == GOOD.DERControl[0]
    assert parsed.DERControl[2] == GOOD.DERControl[2]
    assert (parsed.all, parsed.results, parsed.href) == (GOOD.all, GOOD.results, GOOD.href)


def test_an_out_of_range_control_stands_in_alone() -> None:
    parsed = parse(DERControlList, _with_middle(DERControlBase=DERControlBase(opModFixedW=20000)))
    _assert_others_intact(parsed)
    stand_in = parsed.DERControl[1]
    assert isinstance(stand_in, InvalidDERControl)
    assert stand_in.problem == "DERControlBase.opModFixedW: expected an integer in -10000..10000, got '20000'"
    # what answering it needs, as served
    assert (stand_in.mRID, stand_in.replyTo, stand_in.responseRequired, stand_in.href) == (
        MIDDLE.mRID,
        MIDDLE.replyTo,
        MIDDLE.responseRequired,
        MIDDLE.href,
    )
    assert (stand_in.creationTime, stand_in.EventStatus, stand_in.interval) == (
        MIDDLE.creationTime,
        MIDDLE.EventStatus,
        MIDDLE.interval,
    )
    # and nothing it could be made to do
    assert stand_in.DERControlBase == DERControlBase()
    assert stand_in.randomizeStart is None and stand_in.randomizeDuration is None


@pytest.mark.parametrize(
    ("old", "new", "problem", "defaulted"),
    [
        (
            MIDDLE_INTERVAL,
            b"<interval><duration>-60</duration>" + MIDDLE_START + b"</interval>",
            "interval.duration: expected an integer in 0..4294967295, got '-60'",
            {"interval": DateTimeInterval(duration=0, start=EPOCH)},
        ),
        (
            MIDDLE_INTERVAL,
            MIDDLE_INTERVAL + MIDDLE_INTERVAL,
            "interval: appears more than once",
            {"interval": DateTimeInterval(duration=0, start=EPOCH)},
        ),
        (
            b"<creationTime>1795681800</creationTime>",
            b"<creationTime>soon</creationTime>",
            "creationTime: expected TimeType (integer seconds since 1970 UTC), got 'soon'",
            {"creationTime": EPOCH},
        ),
        (
            b"<currentStatus>0</currentStatus>",
            b"<currentStatus>256</currentStatus>",
            "EventStatus.currentStatus: expected an integer in 0..255, got '256'",
            {"EventStatus": EventStatus(currentStatus=0, dateTime=EPOCH, potentiallySuperseded=False)},
        ),
        (
            b'responseRequired="03"',
            b'responseRequired="0G"',
            "responseRequired: expected hexBinary of at most 1 bytes, got '0G'",
            {"responseRequired": 0},
        ),
        (
            b"<opModConnect>true</opModConnect>",
            b"<opModConnect>yes</opModConnect>",
            "DERControlBase.opModConnect: expected a boolean (true/false/1/0), got 'yes'",
            {},
        ),
    ],
    ids=["negative-duration", "two-intervals", "malformed-time", "bad-status", "bad-hex-attr", "bad-bool"],
)
def test_a_malformed_control_keeps_what_is_valid(
    old: bytes, new: bytes, problem: str, defaulted: dict[str, object]
) -> None:
    parsed = parse(DERControlList, _middle_edited(old, new))
    _assert_others_intact(parsed)
    stand_in = parsed.DERControl[1]
    assert isinstance(stand_in, InvalidDERControl)
    assert stand_in.problem == problem
    assert stand_in.mRID == MIDDLE.mRID
    assert stand_in.DERControlBase == DERControlBase()
    for name in ("replyTo", "responseRequired", "creationTime", "EventStatus", "interval"):
        expected = defaulted[name] if name in defaulted else getattr(MIDDLE, name)
        assert getattr(stand_in, name) == expected, name


def test_a_control_without_a_readable_mrid_is_dropped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = _middle_edited(f"<mRID>{MIDDLE.mRID}</mRID>".encode(), b"<mRID>not-hex</mRID>")
    with caplog.at_level(logging.WARNING, logger="app.sep.codec"):
        first = parse(DERControlList, body)
        again = parse(DERControlList, body)  # the next poll of the same list
    assert first == again
    assert first.DERControl == (GOOD.DERControl[0], GOOD.DERControl[2])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "dropped DERControlList/DERControl[1]: mRID: expected hexBinary of 1..16 bytes, got 'not-hex'"
        " (too broken to stand in for)"
    ]


def test_the_memory_of_dropped_items_is_bounded() -> None:
    for n in range(3 * codec_module._DROPS_REMEMBERED):
        body = _middle_edited(f"<mRID>{MIDDLE.mRID}</mRID>".encode(), f"<mRID>x{n}</mRID>".encode())
        assert len(parse(DERControlList, body).DERControl) == 2
        assert len(codec_module._dropped) <= codec_module._DROPS_REMEMBERED


def test_every_control_invalid_still_parses_the_list() -> None:
    body = to_xml(GOOD).replace(b"<randomizeStart>60<", b"<randomizeStart>7200<")
    parsed = parse(DERControlList, body)
    assert [c.mRID for c in parsed.DERControl] == [c.mRID for c in GOOD.DERControl]
    assert all(isinstance(c, InvalidDERControl) for c in parsed.DERControl)


@pytest.mark.parametrize(
    "body",
    [
        to_xml(GOOD).replace(b' all="3"', b' all="three"'),
        to_xml(GOOD).replace(b' results="3"', b' results="-1"'),
        to_xml(GOOD).replace(b' all="3"', b""),
        to_xml(GOOD)[:-20],
        b'<!DOCTYPE DERControlList [<!ENTITY a "aaaa">]>' + to_xml(GOOD),
        to_xml(GOOD).replace(b"<rampTms>", b"<a>" * 40 + b"</a>" * 40 + b"<rampTms>"),
    ],
    ids=["bad-all", "bad-results", "no-all", "truncated", "dtd", "too-deep-inside-an-item"],
)
def test_a_broken_envelope_still_refuses_the_whole_list(body: bytes) -> None:
    with pytest.raises(SepParseError):
        parse(DERControlList, body)


def test_items_of_other_lists_are_not_salvaged() -> None:
    body = to_xml(documents.der_program_list()).replace(b"<primacy>1<", b"<primacy>999<")
    with pytest.raises(SepParseError, match=r"DERProgramList/DERProgram\[0\]\.primacy"):
        parse(DERProgramList, body)


def test_a_stand_in_is_written_as_a_valid_control_without_its_problem(
    assert_valid: Callable[[bytes], None],
) -> None:
    parsed = parse(DERControlList, _with_middle(DERControlBase=DERControlBase(opModFixedW=20000)))
    written = to_xml(parsed)
    assert_valid(written)
    assert b"problem" not in written and b"opModFixedW>20000" not in written


@dataclass(frozen=True, slots=True, kw_only=True)
class _OneSalvaged:
    DERControl: Annotated[DERControl, Salvage(lambda fields, problem: None)]


def test_only_repeated_elements_can_be_salvaged() -> None:
    with pytest.raises(TypeError, match="only repeated elements can be salvaged"):
        to_xml(_OneSalvaged(DERControl=MIDDLE))
