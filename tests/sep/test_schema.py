"""Every document we write validates against the official sep.xsd, and parses back to the same model."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.sep import SepParseError, parse, parse_one_of, to_xml
from app.sep.metering_mirror import MirrorMeterReading, MirrorMeterReadingList
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


def test_parse_one_of_dispatches_on_root() -> None:
    single = documents.mirror_meter_reading()
    several = documents.mirror_meter_reading_list(3)
    choices = (MirrorMeterReading, MirrorMeterReadingList)
    assert parse_one_of(to_xml(single), *choices) == single
    assert parse_one_of(to_xml(several), *choices) == several
    with pytest.raises(SepParseError, match=r"expected root element .*MirrorMeterReading.*got .*DERStatus"):
        parse_one_of(to_xml(documents.der_status()), *choices)


def test_every_model_compiles() -> None:
    """Every resource model in app.sep has resolvable annotations and a codec table."""
    import dataclasses
    import importlib
    import pkgutil

    import app.sep
    from app.sep.codec import _spec

    not_models = {"certificate", "codec", "exceptions", "identity"}
    models = [
        value
        for info in pkgutil.iter_modules(app.sep.__path__)
        if info.name not in not_models
        for value in vars(importlib.import_module(f"app.sep.{info.name}")).values()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == f"app.sep.{info.name}"
        and value.__name__ not in {"Attr", "Range", "Hex", "HexStr", "Salvage"}
    ]
    assert len(models) > 50
    for model in models:
        assert _spec(model).cls is model
