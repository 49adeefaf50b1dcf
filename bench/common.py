"""Shared pieces of the benchmarks: a result row, a timing loop and the table printer."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured figure: what, how much, in which unit, and a free-form comparison."""

    name: str
    value: float
    unit: str
    note: str = ""


def ops_per_second(fn: Callable[[], object], min_seconds: float = 0.5) -> float:
    """Call `fn` repeatedly for at least `min_seconds` of wall time and return calls per second."""
    fn()  # warm-up
    count = 0
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        fn()
        count += 1
        elapsed = time.perf_counter() - started
    return count / elapsed


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def print_table(rows: list[Row]) -> None:
    """Print rows as an aligned text table."""
    width = max((len(r.name) for r in rows), default=10)
    print(f"{'benchmark':<{width}}  {'value':>14}  {'unit':<10}  note")
    print("-" * (width + 40))
    for r in rows:
        print(f"{r.name:<{width}}  {r.value:>14.3f}  {r.unit:<10}  {r.note}")
