"""What the store raises instead of sqlite's errors: a part decides from the class, never the text."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The state database could not be read or written now (full disk, I/O error); retry later."""


class StoreFull(StoreUnavailable):
    """The disk the state database lives on is full."""


class StoreCorrupt(StoreUnavailable):
    """The file was damaged; it has been quarantined and a fresh one is in its place."""
