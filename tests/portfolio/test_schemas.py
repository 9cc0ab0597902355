"""The one schema per table: the generator conforms to it and docs/book.md documents it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from runoff.errors import InvalidInput
from runoff.portfolio import schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "book.md"


@pytest.mark.parametrize("table", list(schemas.TABLES), ids=list(schemas.TABLES))
def test_every_generated_table_conforms_to_its_schema(small_book: dict[str, pl.DataFrame], table: str) -> None:
    frame = small_book[table]
    assert frame.height > 0
    assert schemas.TABLES[table].violations(frame) == []


def test_amount_columns_are_integer_fen_and_dates_are_dates() -> None:
    for table in schemas.TABLES.values():
        for column in table.columns:
            if column.name.endswith("_fen"):
                assert column.dtype == pl.Int64(), f"{table.name}.{column.name}"
            if column.name.endswith(("_on", "month_end")):
                assert column.dtype == pl.Date(), f"{table.name}.{column.name}"


def test_docs_hold_the_schemas_generated_from_the_code() -> None:
    assert schemas.schemas_markdown() in DOCS.read_text(encoding="utf-8"), (
        "docs/book.md is out of date: paste runoff.portfolio.schemas.schemas_markdown() into its schema section"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.with_columns(pl.lit("M9").alias("bucket")), "outside"),
        (lambda f: f.with_columns(pl.col("dpd").cast(pl.Int64)), "expected Int32"),
        (lambda f: f.with_columns(pl.lit(None, dtype=pl.Int64).alias("due_fen")), "nulls"),
        (lambda f: pl.concat([f, f.head(1)]), "not unique"),
    ],
    ids=["unknown-bucket", "wrong-type", "null-amount", "duplicate-key"],
)
def test_violations_name_what_is_wrong(small_book: dict[str, pl.DataFrame], change, expected: str) -> None:
    broken = change(small_book["performance"].head(50))
    problems = schemas.PERFORMANCE.violations(broken)
    assert any(expected in p for p in problems), problems


def test_conform_refuses_a_frame_missing_a_column(small_book: dict[str, pl.DataFrame]) -> None:
    with pytest.raises(InvalidInput, match="principal_fen"):
        schemas.LOANS.conform(small_book["loans"].drop("principal_fen"))


def test_unknown_table_names_the_tables_that_exist() -> None:
    with pytest.raises(InvalidInput, match="performance"):
        schemas.table_schema("perf")
