"""Server values the gateway bounded or distrusts: one WARNING each, and the list for the status page."""

from __future__ import annotations

import logging

_LOGGER = logging.getLogger(__name__)


class Notices:
    """Current notices by key (e.g. a capped pollRate per href, the server clock's offset).

    `note()` logs a WARNING only when a key's message is new or changed; `clear()` logs once when
    the value is back within bounds. Nothing here repeats a line per poll.
    """

    def __init__(self) -> None:
        self._current: dict[str, str] = {}

    def note(self, key: str, message: str) -> None:
        """`key` is out of bounds, as `message` says (logged once while it stays so)."""
        if self._current.get(key) != message:
            self._current[key] = message
            _LOGGER.warning("%s", message)

    def clear(self, key: str) -> None:
        """`key` is within bounds again."""
        if self._current.pop(key, None) is not None:
            _LOGGER.info("%s: within bounds again", key)

    def current(self) -> dict[str, str]:
        """Every current notice by key (for the status page)."""
        return dict(self._current)


def bounded(value: int, floor: int, ceiling: int) -> int:
    """`value` raised to `floor` or capped to `ceiling`."""
    return min(max(value, floor), ceiling)


def note_rate(
    notices: Notices, key: str, what: str, value: int | None, floor: int, ceiling: int
) -> int | None:
    """`value` bounded to [floor, ceiling], with a notice under `key` when it had to be (None stays None)."""
    if value is None:
        notices.clear(key)
        return None
    used = bounded(value, floor, ceiling)
    if used == value:
        notices.clear(key)
    else:
        side = "above the ceiling" if value > ceiling else "below the floor"
        notices.note(key, f"{what} {value} s from the server is {side}; using {used} s")
    return used
