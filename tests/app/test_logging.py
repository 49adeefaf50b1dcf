"""Log lines: journald stamps its own; a run by hand (JOURNAL_STREAM unset) gets a timestamp."""

from __future__ import annotations

import logging
import re

from app.cli import log_format


def _line(fmt: str) -> str:
    record = logging.LogRecord("app.x", logging.WARNING, __file__, 1, "hello", None, None)
    return logging.Formatter(fmt).format(record)


def test_a_run_by_hand_stamps_every_line() -> None:
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING app.x: hello$", _line(log_format({})))


def test_under_journald_the_journal_stamps_them() -> None:
    assert _line(log_format({"JOURNAL_STREAM": "8:12345"})) == "WARNING app.x: hello"
