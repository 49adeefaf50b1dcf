"""Release versions: dotted numbers with an optional a/b/rc pre-release, compared numerically."""

from __future__ import annotations

import re
from functools import total_ordering

_VERSION = re.compile(r"^(\d+(?:\.\d+){0,3})(?:(a|b|rc)(\d+))?$")
_PRE = {"a": 0, "b": 1, "rc": 2}


@total_ordering
class Version:
    """A comparable release version such as `1.4.2` or `2.0.0rc1` (a pre-release sorts first)."""

    __slots__ = ("_key", "text")

    def __init__(self, text: str) -> None:
        match = _VERSION.match(text)
        if match is None:
            raise ValueError(f"not a release version: {text!r} (expected e.g. 1.4.2 or 2.0.0rc1)")
        numbers = [int(n) for n in match.group(1).split(".")]
        numbers += [0] * (4 - len(numbers))  # 1.4 == 1.4.0
        pre = (_PRE[match.group(2)], int(match.group(3))) if match.group(2) else (3, 0)
        self.text = text
        self._key = (*numbers, *pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key == other._key

    def __lt__(self, other: Version) -> bool:
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def is_version(text: str) -> bool:
    """Whether `text` is a valid release version (also safe as a folder name)."""
    return _VERSION.match(text) is not None
