"""Every document we write validates against the official sep.xsd, and parses back to the same model."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.sep import parse, to_xml
from tests.sep import documents

ALL_DOCUMENTS = {**documents.SERVER_DOCUMENTS, **documents.SENT_DOCUMENTS}


@pytest.mark.parametrize("name", sorted(documents.SENT_DOCUMENTS))
def test_sent_document_is_schema_valid(name: str, assert_valid: Callable[[bytes], None]) -> None:
    assert_valid(to_xml(documents.SENT_DOCUMENTS[name]()))


@pytest.mark.parametrize("name", sorted(documents.SERVER_DOCUMENTS))
def test_server_document_is_schema_valid(name: str, assert_valid: Callable[[bytes], None]) -> None:
    assert_valid(to_xml(documents.SERVER_DOCUMENTS[name]()))


@pytest.mark.parametrize("name", sorted(ALL_DOCUMENTS))
def test_round_trip(name: str) -> None:
    model = ALL_DOCUMENTS[name]()
    body = to_xml(model)
    parsed = parse(type(model), body)
    assert parsed == model
    assert to_xml(parsed) == body


def test_fifty_control_list_is_valid_and_round_trips(assert_valid: Callable[[bytes], None]) -> None:
    model = documents.der_control_list(50)
    body = to_xml(model)
    assert_valid(body)
    assert parse(type(model), body) == model
