"""Run every benchmark module and print one table; `python -m bench [name ...]` runs a subset."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench
from bench.common import Row, print_table


def _modules(selected: list[str]) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if any(s in n for s in selected)]
    return names


def main(argv: list[str]) -> int:
    rows: list[Row] = []
    failed: list[str] = []
    for name in _modules(argv):
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            rows.extend(module.run())
        except Exception as exc:  # a broken benchmark is reported, the others still run
            failed.append(f"{name}: {exc!r}")
        print(f"# {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print_table(rows)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
