"""Use cases of the book: a generated book of several partitions loads into one ledger that verifies clean."""

from __future__ import annotations

from pathlib import Path

from runoff.app import book
from runoff.app.context import build_context
from runoff.config import Settings
from runoff.portfolio.generator import BookConfig
from runoff.store.workspace import Workspace

OPEN = ("current", "M1", "M2", "M3", "M4+")


def test_a_book_of_several_partitions_loads_into_one_ledger(tmp_path: Path) -> None:
    config = BookConfig(customers=9000, months=6, seed=21, blocks_per_partition=1)
    ws = Workspace.init(tmp_path)
    assert book.generate_book(ws, config).partitions == 3
    rows = [r for r in book.book_info(ws).by_bucket().to_dicts() if r["bucket"] in OPEN]
    with build_context(Settings(workspace=tmp_path)) as ctx:
        loaded = book.load_ledger(ws, ctx)
    assert loaded.loans == sum(r["loans"] for r in rows) > 0
    assert loaded.customers == loaded.accounts == config.customers
    assert loaded.as_of.isoformat() == "2024-06-30"
