"""The error a configuration section's own checks raise (a module of its own: no import circles)."""

from __future__ import annotations


class Invalid(ValueError):
    """Raised by a section's own checks: which key, its value, and what was expected."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        super().__init__(key, value, expected)
        self.key, self.value, self.expected = key, value, expected
