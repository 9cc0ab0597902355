"""Reading a tape's cells into typed fields (字段转换).

Each kind is read by a fast parser over the whole column (a plain cast or one date format) and, for
the few cells it cannot read, by a full parser over just those cells: trimmed, thousands separators
and currency signs removed, percent signs, every date format. The full parser is the fast one after
cleaning, so both agree wherever both read a cell. Amounts are read to the fen: a part of a fen of
1e-4 or more (a third decimal) makes the cell unreadable; float noise below that is rounded away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from runoff.portfolio.tape.fields import (
    DTYPES,
    MAX_REF_LENGTH,
    REF_DTYPE,
    ROW,
    TAPE_FIELDS,
    FieldKind,
    TapeField,
    parse_status,
)
from runoff.portfolio.tape.mapping import ISO_DATE, AmountUnit, RateScale, TapeMapping
from runoff.servicing.product import parse_method

BAD = "__bad__"  # prefix of the "given but unreadable" flag of a field
SRC = "__src__"  # prefix of the cell as given (for messages)

MAX_AMOUNT_FEN = 10**11
"""Amounts read up to 1 billion yuan: below this a float64 holds every fen with room to spot a third decimal."""
SUB_FEN_TOLERANCE = 1e-4
"""A yuan amount more than this many fen away from a whole fen has a third decimal and is refused."""
RATE_DECIMALS = 10
"""Rates are kept to 1e-10, far finer than any contract rate (the schedule engine works in 1e-8)."""
_MONEY_MARKS = " \t¥￥元"


def _present(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """The source cell holds something (not null, not blank text)."""
    if dtype == pl.String:
        return raw.is_not_null() & (raw.str.strip_chars().str.len_bytes() > 0)
    return raw.is_not_null()


def _as_text(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return raw.str.strip_chars()
    if dtype.is_float():
        # Excel stores whole numbers as floats: 20240131.0 must read as 20240131.
        return (
            pl.when(raw == raw.round(0))
            .then(raw.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(raw.cast(pl.String))
        )
    return raw.cast(pl.String)


def _date(raw: pl.Expr, dtype: pl.DataType, formats: Sequence[str], *, full: bool) -> pl.Expr:
    if dtype == pl.Date:
        return raw
    if isinstance(dtype, pl.Datetime):
        return raw.dt.date()
    if not full and dtype == pl.String:
        return raw.str.to_date(formats[0], strict=False)
    text = _as_text(raw, dtype)
    # ISO dates are unambiguous and what typed Excel cells read as, so they are always understood.
    tried = [*formats, *([ISO_DATE] if ISO_DATE not in formats else [])]
    return pl.coalesce([text.str.to_date(fmt, strict=False) for fmt in tried])


def _fen_of(number: pl.Expr, scale: int) -> pl.Expr:
    scaled = number.cast(pl.Float64) * scale
    whole = scaled.round(0)
    readable = scaled.is_finite() & ((scaled - whole).abs() < SUB_FEN_TOLERANCE) & (whole.abs() < MAX_AMOUNT_FEN)
    return pl.when(readable).then(whole.cast(pl.Int64, strict=False))


def _amount_fen(raw: pl.Expr, dtype: pl.DataType, unit: AmountUnit, *, full: bool) -> pl.Expr:
    """Money as exact integer fen; a yuan amount with a third decimal is unreadable, not rounded."""
    scale = 100 if unit is AmountUnit.YUAN else 1
    if dtype.is_integer():
        return pl.when(raw.abs() * scale < MAX_AMOUNT_FEN).then(raw.cast(pl.Int64) * scale)
    if dtype != pl.String:
        return _fen_of(raw, scale)
    text = raw.str.strip_chars(_MONEY_MARKS).str.replace_all(",", "", literal=True) if full else raw
    return _fen_of(text.cast(pl.Float64, strict=False), scale)


def _integer(raw: pl.Expr, dtype: pl.DataType, *, full: bool) -> pl.Expr:
    if dtype.is_integer():
        return raw.cast(pl.Int64)
    if dtype == pl.String and not full:
        return raw.cast(pl.Int64, strict=False)
    number = raw.str.strip_chars().cast(pl.Float64, strict=False) if dtype == pl.String else raw.cast(pl.Float64)
    return pl.when(number.is_finite() & (number == number.round(0)) & (number.abs() < 2**53)).then(
        number.cast(pl.Int64, strict=False)
    )


WHOLE_NUMBER_REF = r"^[0-9]{1,18}$"
"""A reference that is the book's id itself: a whole number that fits Int64 with room to spare."""


def canonical_ref(text: pl.Expr) -> pl.Expr:
    """A reference in its one written form: a whole number without leading zeros (``00123`` → ``123``),
    anything else as given (trimmed). So ``00123`` and ``123`` are one loan, as when ids were numbers."""
    return (
        pl.when(text.str.contains(WHOLE_NUMBER_REF))
        .then(text.cast(pl.Int64, strict=False).cast(pl.String))
        .otherwise(text)
    )


def _identifier(raw: pl.Expr, dtype: pl.DataType, *, full: bool) -> pl.Expr:
    """A lender's reference (借据号, 客户号) as text: whole numbers (typed or written, Excel floats without
    ``.0``) canonical, anything else trimmed; blank is empty, over :data:`MAX_REF_LENGTH` characters unreadable."""
    del full  # one parser: trimming text is as fast as any shortcut
    text = _as_text(raw, dtype)
    return pl.when(text.str.len_chars().is_between(1, MAX_REF_LENGTH)).then(canonical_ref(text))


def _rate(raw: pl.Expr, dtype: pl.DataType, scale: RateScale, *, full: bool) -> pl.Expr:
    divisor = 100.0 if scale is RateScale.PERCENT else 1.0
    if dtype.is_numeric() or not full:
        value = (raw.cast(pl.Float64, strict=False) if dtype == pl.String else raw.cast(pl.Float64)) / divisor
    else:
        text = raw.cast(pl.String).str.strip_chars()
        number = text.str.strip_suffix("%").str.strip_chars().cast(pl.Float64, strict=False)
        value = pl.when(text.str.ends_with("%")).then(number / 100.0).otherwise(number / divisor)
    # "0.7" / 100 is 0.006999…9 in binary; rounding to 1e-10 gives back the double nearest 0.007.
    return pl.when(value.is_finite()).then(value.round(RATE_DECIMALS))


def _aliased(raw: pl.Expr, dtype: pl.DataType, table: Mapping[str, str]) -> pl.Expr:
    text = raw if dtype == pl.String else _as_text(raw, dtype)
    return text.replace_strict(dict(table), default=None, return_dtype=pl.String)


def _alias_table(values: Iterable[Any], extra: Mapping[str, Any], parse: Any) -> dict[str, str]:
    """Each distinct cell of a method or status column → its value, through the one alias seam (``parse``)."""
    table: dict[str, str] = {}
    extra_keys = {k.strip(): v for k, v in extra.items()}
    for value in values:
        if value is None:
            continue
        key = str(value).strip()
        if key in extra_keys:
            table[str(value)] = extra_keys[key].value
            continue
        try:
            table[str(value)] = parse(key).value
        except ValueError:
            continue
    return table


def _distinct_cells(raw: pl.DataFrame, source: str) -> list[Any]:
    col = raw.get_column(source)
    if col.dtype != pl.String:
        col = raw.select(_as_text(pl.col(source), col.dtype)).to_series()
    return col.unique().to_list()


def _reader(fld: TapeField, raw: pl.DataFrame, source: str, mapping: TapeMapping, *, full: bool) -> pl.Expr:
    """The expression reading field ``fld`` from column ``source`` of ``raw`` (fast or full parser)."""
    col = pl.col(source)
    dtype = raw.schema[source]
    value: pl.Expr
    if fld.kind is FieldKind.TEXT:
        text = _as_text(col, dtype)
        value = pl.when(text.str.len_bytes() > 0).then(text)
    elif fld.kind is FieldKind.ID:
        value = _identifier(col, dtype, full=full)
    elif fld.kind is FieldKind.DATE:
        value = _date(col, dtype, mapping.date_formats_of(fld.name), full=full)
    elif fld.kind is FieldKind.AMOUNT:
        value = _amount_fen(col, dtype, mapping.unit_of(fld.name), full=full)
    elif fld.kind is FieldKind.INTEGER:
        value = _integer(col, dtype, full=full)
    elif fld.kind is FieldKind.RATE:
        value = _rate(col, dtype, mapping.scale_of(fld.name), full=full)
    elif fld.kind is FieldKind.METHOD:
        value = _aliased(col, dtype, _alias_table(_distinct_cells(raw, source), mapping.method_aliases, parse_method))
    else:
        value = _aliased(col, dtype, _alias_table(_distinct_cells(raw, source), mapping.status_aliases, parse_status))
    return value.cast(DTYPES[fld.kind]).alias(fld.name)


def convert_tape(raw: pl.DataFrame, mapping: TapeMapping, *, file: str = "tape") -> pl.DataFrame:
    """Typed tape fields from a raw tape: one column per field (null when the tape lacks it).

    Beside each field the result holds ``__bad__<field>`` (a cell was given but could not be read) and
    ``__src__<field>`` (the cell as given, for messages); ``row`` is the 1-based data row.
    """
    resolved = mapping.resolve(raw.columns, file=file)
    fast: list[pl.Expr] = [pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW)]
    for fld in TAPE_FIELDS:
        source = resolved.get(fld.name)
        if source is None:
            fast += [
                pl.lit(None, dtype=DTYPES[fld.kind]).alias(fld.name),
                pl.lit(None, dtype=pl.String).alias(SRC + fld.name),
            ]
        else:
            fast += [_reader(fld, raw, source, mapping, full=False), pl.col(source).alias(SRC + fld.name)]
    out = raw.select(fast)

    # Cells given that the fast parser left empty: read again with the full parser, those rows only.
    missed = {n: pl.col(SRC + n).is_not_null() & pl.col(n).is_null() for n in resolved}
    counts = out.select([m.sum().alias(n) for n, m in missed.items()]).row(0, named=True) if missed else {}
    patches: list[pl.Series | pl.Expr] = []
    for fld in TAPE_FIELDS:
        name = fld.name
        if not counts.get(name):
            patches.append(pl.lit(False).alias(BAD + name))
            continue
        source = resolved[name]
        rows = out.select(pl.arg_where(missed[name])).to_series()
        cells = raw.select(pl.col(source).gather(rows))
        dtype = raw.schema[source]
        again = cells.select(
            _reader(fld, raw, source, mapping, full=True).alias("value"),
            _present(pl.col(source), dtype).alias("present"),
        )
        value = again.get_column("value")
        bad_rows = rows.filter(again.get_column("present") & value.is_null())
        patches.append(out.get_column(name).clone().scatter(rows, value))
        flags = pl.Series(BAD + name, [False], dtype=pl.Boolean).extend_constant(False, out.height - 1)
        patches.append(flags.scatter(bad_rows, True) if bad_rows.len() else flags)
    return out.with_columns(patches)


def read_ids(values: pl.Series) -> pl.Series:
    """References as the importer reads them (e.g. a customer tape's 客户号); unreadable ones become null."""
    return (
        pl.select(_identifier(pl.lit(values), values.dtype, full=True).cast(REF_DTYPE)).to_series().alias(values.name)
    )
