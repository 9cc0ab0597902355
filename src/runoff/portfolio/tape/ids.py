"""Surrogate keys (代理键): the book's Int64 ids for a lender's own references (借据号, 客户号, 额度账户号).

The book keys loans, customers and accounts by Int64 (the analytics count and group by them, e.g.
``numpy.bincount`` by customer), while a lender's references are often text (``DK20240131000123``,
``C-88812``). A reference that is a whole number is its own id, so integer tapes load exactly as they
always did; any other reference gets the next id above every id the book and the id map use, in the
order the rows come (files in the order given, rows in file order), and keeps it in the id map:
the same reference always maps to the same id, in any later file or run.

Pure: the id map (``ref``, ``id``) comes in as a frame and the new entries go out as one;
``runoff.app.tape_import`` keeps the map in the workspace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from runoff.portfolio.tape.convert import WHOLE_NUMBER_REF
from runoff.portfolio.tape.fields import ID_DTYPE, REF_DTYPE, REF_FIELDS

ID_MAP_SCHEMA: dict[str, pl.DataType] = {"ref": REF_DTYPE, "id": ID_DTYPE}
"""An id map: one row per reference that needed a surrogate id (whole-number references need none)."""

REF_COLUMNS: dict[str, str] = {kind: f"{kind}_ref" for kind in REF_FIELDS}
"""Where the lender's reference is kept beside the id: ``loan_ref``, ``customer_ref``, ``account_ref``."""


def empty_id_map() -> pl.DataFrame:
    return pl.DataFrame(schema=ID_MAP_SCHEMA)


def _as_int(value: object) -> int:
    """A column's max as an int (0 for an empty or all-null column)."""
    return int(value) if isinstance(value, int) else 0


def whole_number_id(ref: pl.Expr) -> pl.Expr:
    """The id a whole-number reference is (``123`` → 123); null for any other reference."""
    return pl.when(ref.str.contains(WHOLE_NUMBER_REF)).then(ref.cast(ID_DTYPE, strict=False))


def assign_ids(refs: pl.Series, *, id_map: pl.DataFrame, floor: int) -> tuple[pl.Series, pl.DataFrame]:
    """The id of each reference in ``refs`` and the id map's new entries.

    A reference in ``id_map`` keeps its id; a whole number is its own id unless the map gave that
    number to another reference; any other gets the next id above ``floor`` (the largest id the book
    uses), the map's ids and the whole numbers among ``refs``, in order of first appearance. Null
    references get null ids.
    """
    frame = pl.DataFrame({"ref": refs.cast(REF_DTYPE)}).with_row_index("__at")
    known = frame.join(id_map.select("ref", pl.col("id").alias("__mapped")), on="ref", how="left")
    taken = id_map.get_column("id").implode()
    own = whole_number_id(pl.col("ref"))
    known = known.with_columns(
        pl.coalesce(pl.col("__mapped"), pl.when(~own.is_in(taken)).then(own)).alias("__id")
    ).sort("__at")
    top = max(floor, _as_int(id_map.get_column("id").max()), _as_int(known.select(own.max()).item()))
    needing = (
        known.filter(pl.col("ref").is_not_null() & pl.col("__id").is_null()).select("ref").unique(maintain_order=True)
    )
    new = needing.with_columns((pl.int_range(1, pl.len() + 1, dtype=pl.Int64) + top).alias("id"))
    ids = (
        known.join(new.rename({"id": "__new"}), on="ref", how="left")
        .sort("__at")
        .select(pl.coalesce("__id", "__new").cast(ID_DTYPE))
        .to_series()
    )
    return ids.alias(refs.name), new.select([pl.col(n).cast(t) for n, t in ID_MAP_SCHEMA.items()])


@dataclass(frozen=True, slots=True)
class Identified:
    """Accepted rows with the book's ids (``loan_id``, ``customer_id``, ``account_id`` Int64) and the lender's
    references beside them (``loan_ref``, ...), and each kind's new id-map entries."""

    rows: pl.DataFrame
    new_entries: dict[str, pl.DataFrame]


def identify(accepted: pl.DataFrame, *, id_maps: Mapping[str, pl.DataFrame], floors: Mapping[str, int]) -> Identified:
    """Give accepted tape rows (references in ``loan_id``, ``customer_id``, ``account_id``) the book's ids.

    Loans and customers first; a loan without an account reference draws on its customer's one
    credit line (account id = customer id, account reference = customer reference, as ``book_loans``),
    so account surrogates start above those customer ids too.
    """
    out = accepted.with_columns(
        pl.col(field).cast(REF_DTYPE).alias(REF_COLUMNS[kind]) for kind, field in REF_FIELDS.items()
    )
    new: dict[str, pl.DataFrame] = {}
    columns: dict[str, pl.Series] = {}
    for kind in ("loan", "customer"):
        field = REF_FIELDS[kind]
        ids, new[kind] = assign_ids(
            out.get_column(REF_COLUMNS[kind]), id_map=id_maps.get(kind, empty_id_map()), floor=floors.get(kind, 0)
        )
        columns[field] = ids.alias(field)
    customer_ids = columns["customer_id"]
    account_refs = out.get_column(REF_COLUMNS["account"])
    defaulted = _as_int(customer_ids.filter(account_refs.is_null()).max())
    account_ids, new["account"] = assign_ids(
        account_refs, id_map=id_maps.get("account", empty_id_map()), floor=max(floors.get("account", 0), defaulted)
    )
    out = out.with_columns(
        columns["loan_id"],
        customer_ids,
        account_ids.fill_null(customer_ids).alias("account_id"),
        pl.col(REF_COLUMNS["account"]).fill_null(pl.col(REF_COLUMNS["customer"])),
    )
    return Identified(rows=out, new_entries=new)


def refs_of_ids(ids: pl.Series, id_map: pl.DataFrame) -> pl.Series:
    """The reference each book id stands for: the id map's, else the id written as a whole number."""
    frame = pl.DataFrame({"id": ids.cast(ID_DTYPE)}).with_row_index("__at")
    joined = frame.join(id_map.select("id", "ref"), on="id", how="left").sort("__at")
    return joined.select(pl.coalesce("ref", pl.col("id").cast(REF_DTYPE))).to_series().alias(ids.name)
