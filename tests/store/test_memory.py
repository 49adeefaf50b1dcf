"""The store's page cache is capped: heap memory that stays once filled (issue 18, steady RSS)."""

from __future__ import annotations

from pathlib import Path

from app.store import open_store


def test_page_cache_is_capped_at_512_kib(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        assert store.raw("PRAGMA cache_size").fetchone()[0] == -512
        assert store.raw("PRAGMA page_size").fetchone()[0] == 512  # the cap is ~1000 pages
