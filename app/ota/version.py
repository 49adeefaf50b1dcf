"""Release versions: PEP 440 (`packaging.version`), in canonical form only, compared as pip compares them."""

from __future__ import annotations

from functools import total_ordering

from packaging.version import InvalidVersion
from packaging.version import Version as _Pep440


@total_ordering
class Version:
    """A comparable release version such as `1.4.2` or `2.0.0rc1` (a pre-release sorts first).

    Only the canonical spelling is accepted (`1.0.0rc1`, not `1.0.0-RC1`), so one version has one
    folder name, and no local label (`+build`): a release is one build, named by its version.
    """

    __slots__ = ("_parsed", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise ValueError(f"not a release version: {text!r}")
        try:
            parsed = _Pep440(text)
        except InvalidVersion:
            raise ValueError(
                f"not a PEP 440 release version: {text!r} (expected e.g. 1.4.2 or 2.0.0rc1)"
            ) from None
        if parsed.local is not None or str(parsed) != text:
            raise ValueError(
                f"not a canonical release version: {text!r} (the canonical form is {parsed.public!r})"
            )
        self.text = text
        self._parsed = parsed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._parsed == other._parsed

    def __lt__(self, other: Version) -> bool:
        return self._parsed < other._parsed

    def __hash__(self) -> int:
        return hash(self._parsed)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def is_version(text: str) -> bool:
    """Whether `text` is a valid release version (also safe as a folder name)."""
    try:
        Version(text)
    except ValueError:
        return False
    return True
