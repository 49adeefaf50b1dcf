"""Errors of the identity store; each says what the installer should do next."""

from __future__ import annotations


class IdentityStoreError(Exception):
    """Any failure managing the box's key and certificate."""


class NoIdentity(IdentityStoreError):
    """No certificate is installed: run `identity init`, have the CSR signed, then `identity install`."""


class KeyExists(IdentityStoreError):
    """A pending key is already prepared; use its CSR, or pass --force to replace it."""


class CertificateRefused(IdentityStoreError):
    """The certificate cannot be installed (message says why); the identity in force is unchanged."""
