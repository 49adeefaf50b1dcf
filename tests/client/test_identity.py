"""LFDI/SFDI of our certificate (2030.5-2018 §6.3.3-6.3.4), with the standard's vector."""

from __future__ import annotations

from app.client.identity import identity_of_pem_file, sfdi_from_lfdi
from wattsmart_lab.pki import Pki


def test_spec_vector() -> None:
    assert sfdi_from_lfdi("3e4f45ab31edfe5b67e343e5e4562e31984e23e5") == 167261211391


def test_certificate_identity(pki: Pki) -> None:
    ident = identity_of_pem_file(pki.client().cert)
    assert len(ident.lfdi) == 40 and ident.lfdi == ident.lfdi.lower()
    assert sum(map(int, str(ident.sfdi))) % 10 == 0
