"""A small generated book shared by the portfolio tests (generated once per session)."""

from __future__ import annotations

import polars as pl
import pytest

from runoff.portfolio.generator import BookConfig, generate_partition

SMALL_BOOK = BookConfig(customers=2500, months=18, seed=11)


@pytest.fixture(scope="session")
def small_book() -> dict[str, pl.DataFrame]:
    return generate_partition(SMALL_BOOK, 0)
