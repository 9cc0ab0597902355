"""Loan-tape import rules (借据明细导入): the mapping from a lender's columns to runoff's, conversions, checks.

A loan tape is one row per loan (借据) as the lender exports it: Chinese headers (借据号, 客户号, 放款日期,
本金, 逾期天数 ...), dates as ``2024/01/31`` or ``20240131``, amounts in yuan or fen, methods as 等额本息.
A :class:`TapeMapping` (YAML) says which source column feeds which tape field and how to read it;
:func:`convert_tape` turns the raw columns into typed ones, and :func:`check_tape` runs every rule as a
vectorized Polars expression, so a million rows are checked in one pass with no Python loop over rows.

Each rejected row is reported once, with the FIRST rule it breaks (rules run in the order of
:data:`REASONS`: types, required fields, ranges, dates, balances, DPD, duplicates, references) as its
``column``/``reason``/``message``, and every rule it breaks in ``reasons`` so a user fixing the row sees all
problems at once. Row numbers are 1-based data rows as in the file: data row 1 is the first row after
the header (in Excel, sheet row 2).

Pure: frames in, frames out; reading files, the workspace and the ledger live in ``runoff.app.tape_import``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from runoff.errors import InvalidInput, describe_validation_error
from runoff.portfolio.schemas import LOANS
from runoff.servicing.product import Method, parse_method

ROW = "row"
"""The 1-based data-row number column every converted frame carries."""


class TapeInvalid(InvalidInput):
    """A tape or its mapping cannot be imported at all (missing required column, bad mapping file, unreadable)."""

    code = "tape.invalid"


class FieldKind(StrEnum):
    """How a tape field is read from its source column."""

    ID = "id"  # an identifier, typed like the book's key columns (``runoff.portfolio.schemas``)
    TEXT = "text"
    DATE = "date"
    AMOUNT = "amount"  # money, stored as integer fen (分)
    INTEGER = "integer"
    RATE = "rate"  # a fraction: 0.18 is 18 %
    METHOD = "method"  # schedule method (还款方式), via the one alias seam
    STATUS = "status"


class TapeStatus(StrEnum):
    """A loan's status as a tape states it (贷款状态)."""

    CURRENT = "current"  # 正常
    OVERDUE = "overdue"  # 逾期
    PAID_OFF = "paid-off"  # 结清
    EARLY_SETTLED = "early-settled"  # 提前结清
    CHARGED_OFF = "charged-off"  # 核销

    @property
    def book_status(self) -> str:
        """The ``loans.status`` value (``schemas.LOAN_STATUSES``): current and overdue loans are both active."""
        return "active" if self in (TapeStatus.CURRENT, TapeStatus.OVERDUE) else self.value


STATUS_ALIASES: dict[str, TapeStatus] = {
    "current": TapeStatus.CURRENT,
    "normal": TapeStatus.CURRENT,
    "正常": TapeStatus.CURRENT,
    "overdue": TapeStatus.OVERDUE,
    "delinquent": TapeStatus.OVERDUE,
    "逾期": TapeStatus.OVERDUE,
    "paid-off": TapeStatus.PAID_OFF,
    "paid_off": TapeStatus.PAID_OFF,
    "closed": TapeStatus.PAID_OFF,
    "settled": TapeStatus.PAID_OFF,
    "结清": TapeStatus.PAID_OFF,
    "已结清": TapeStatus.PAID_OFF,
    "early-settled": TapeStatus.EARLY_SETTLED,
    "early_settled": TapeStatus.EARLY_SETTLED,
    "提前结清": TapeStatus.EARLY_SETTLED,
    "charged-off": TapeStatus.CHARGED_OFF,
    "charged_off": TapeStatus.CHARGED_OFF,
    "written-off": TapeStatus.CHARGED_OFF,
    "核销": TapeStatus.CHARGED_OFF,
    "已核销": TapeStatus.CHARGED_OFF,
}


def parse_status(value: Any) -> TapeStatus:
    """The one seam mapping status aliases (正常, 逾期, 结清, 核销, ...) to :class:`TapeStatus`."""
    if isinstance(value, TapeStatus):
        return value
    key = str(value).strip().lower()
    if key in STATUS_ALIASES:
        return STATUS_ALIASES[key]
    allowed = ", ".join(s.value for s in TapeStatus)
    raise ValueError(f"{value!r} is not a loan status; expected one of {allowed} (or 正常, 逾期, 结清, 核销)")


@dataclass(frozen=True, slots=True)
class TapeField:
    """A field of runoff's loan tape: its name, how it is read, whether every row needs it."""

    name: str
    kind: FieldKind
    label_zh: str
    required: bool = False


TAPE_FIELDS: tuple[TapeField, ...] = (
    TapeField("loan_id", FieldKind.ID, "借据号", required=True),
    TapeField("customer_id", FieldKind.ID, "客户号", required=True),
    TapeField("account_id", FieldKind.ID, "额度账户号"),
    TapeField("product_id", FieldKind.TEXT, "产品编号"),
    TapeField("method", FieldKind.METHOD, "还款方式", required=True),
    TapeField("term_months", FieldKind.INTEGER, "期数", required=True),
    TapeField("annual_rate", FieldKind.RATE, "年利率"),
    TapeField("fee_rate", FieldKind.RATE, "月费率"),
    TapeField("principal_fen", FieldKind.AMOUNT, "本金", required=True),
    TapeField("originated_on", FieldKind.DATE, "放款日期", required=True),
    TapeField("first_due_on", FieldKind.DATE, "首期还款日"),
    TapeField("maturity_on", FieldKind.DATE, "到期日"),
    TapeField("status", FieldKind.STATUS, "贷款状态"),
    TapeField("closed_on", FieldKind.DATE, "结清日期"),
    TapeField("principal_balance_fen", FieldKind.AMOUNT, "剩余本金"),
    TapeField("dpd", FieldKind.INTEGER, "逾期天数"),
    TapeField("oldest_unpaid_due_on", FieldKind.DATE, "最早未还款日"),
    TapeField("as_of", FieldKind.DATE, "数据日期"),
)
"""runoff's loan-tape fields in order. Names follow the book's tables (``runoff.portfolio.schemas``):
the ``loans`` columns, then the position on the tape's date (balance, DPD, oldest unpaid due date).
Amounts end in ``_fen`` (integer fen) whatever unit the source writes them in."""

FIELDS_BY_NAME: dict[str, TapeField] = {f.name: f for f in TAPE_FIELDS}

ID_DTYPE: pl.DataType = LOANS.column("loan_id").dtype
"""Identifiers are read as the book stores them (``loans.loan_id``): whole numbers while it keys by Int64."""

DTYPES: dict[FieldKind, pl.DataType] = {
    FieldKind.ID: ID_DTYPE,
    FieldKind.TEXT: pl.String(),
    FieldKind.DATE: pl.Date(),
    FieldKind.AMOUNT: pl.Int64(),
    FieldKind.INTEGER: pl.Int64(),
    FieldKind.RATE: pl.Float64(),
    FieldKind.METHOD: pl.String(),
    FieldKind.STATUS: pl.String(),
}


class AmountUnit(StrEnum):
    """The unit a source column writes money in."""

    YUAN = "yuan"  # 元, up to two decimals
    FEN = "fen"  # 分, whole numbers


class RateScale(StrEnum):
    """How a source column writes a rate: ``0.18`` (fraction) or ``18`` (percent); ``18%`` is always a percent."""

    FRACTION = "fraction"
    PERCENT = "percent"


class ColumnMap(BaseModel):
    """Where one tape field comes from and how to read it; options left out fall back to the mapping's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, description="the column's header in the file, e.g. 借据号")
    formats: tuple[str, ...] | None = Field(default=None, description="date formats (strftime), tried in order")
    unit: AmountUnit | None = None
    scale: RateScale | None = None


def _column_map(value: Any) -> Any:
    return {"source": value} if isinstance(value, str) else value


def _method(value: Any) -> Method:
    return parse_method(value)


def _status(value: Any) -> TapeStatus:
    return parse_status(value)


ISO_DATE = "%Y-%m-%d"
DEFAULT_DATE_FORMATS: tuple[str, ...] = (ISO_DATE, "%Y/%m/%d", "%Y%m%d")


class TapeMapping(BaseModel):
    """How a lender's loan tape maps onto runoff's tape fields (a YAML file, see ``examples/mappings``).

    A field not listed under ``columns`` is taken from a column with the field's own name when the file
    has one, so a tape already in runoff's vocabulary needs no mapping at all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    columns: dict[str, Annotated[ColumnMap, BeforeValidator(_column_map)]] = Field(default_factory=dict)
    date_formats: tuple[str, ...] = Field(default=DEFAULT_DATE_FORMATS, min_length=1)
    amount_unit: AmountUnit = AmountUnit.YUAN
    rate_scale: RateScale = RateScale.FRACTION
    method_aliases: dict[str, Annotated[Method, BeforeValidator(_method)]] = Field(default_factory=dict)
    status_aliases: dict[str, Annotated[TapeStatus, BeforeValidator(_status)]] = Field(default_factory=dict)
    as_of: date | None = Field(default=None, description="the date the tape describes (数据日期)")
    sheet: str | None = Field(default=None, description="Excel: the sheet to read (default: the first)")
    separator: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = Field(default="utf-8", description="CSV text encoding, e.g. utf-8 or gb18030")
    dpd_tolerance_days: int = Field(default=0, ge=0, le=31, description="allowed gap between DPD and its due date")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, ColumnMap]) -> dict[str, ColumnMap]:
        unknown = [k for k in value if k not in FIELDS_BY_NAME]
        if unknown:
            allowed = ", ".join(FIELDS_BY_NAME)
            raise ValueError(f"{', '.join(map(repr, unknown))} is not a tape field; expected one of {allowed}")
        return value

    @field_validator("date_formats")
    @classmethod
    def _formats_have_directives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [f for f in value if "%" not in f]
        if bad:
            raise ValueError(f"{bad!r} are not date formats; expected strftime patterns such as %Y/%m/%d")
        return value

    @model_validator(mode="after")
    def _one_source_per_field(self) -> TapeMapping:
        seen: dict[str, str] = {}
        for name, col in self.columns.items():
            if col.source in seen:
                raise ValueError(f"column {col.source!r} is mapped to both {seen[col.source]} and {name}")
            seen[col.source] = name
            kind = FIELDS_BY_NAME[name].kind
            if col.formats is not None and kind is not FieldKind.DATE:
                raise ValueError(f"`{name}` is not a date; `formats` applies to dates only")
            if col.unit is not None and kind is not FieldKind.AMOUNT:
                raise ValueError(f"`{name}` is not an amount; `unit` applies to amounts only")
            if col.scale is not None and kind is not FieldKind.RATE:
                raise ValueError(f"`{name}` is not a rate; `scale` applies to rates only")
        return self

    def source_of(self, name: str, headers: Sequence[str]) -> str | None:
        """The file's column that feeds field ``name``, or None when the tape does not carry it."""
        col = self.columns.get(name)
        if col is not None:
            return col.source if col.source in headers else None
        return name if name in headers else None

    def resolve(self, headers: Sequence[str], *, file: str = "tape") -> dict[str, str]:
        """Field → source column for ``headers``; refuses a tape that lacks a column the mapping or a rule needs."""
        missing_mapped = [
            f"{col.source!r} (for {name})" for name, col in self.columns.items() if col.source not in headers
        ]
        if missing_mapped:
            raise TapeInvalid(
                f"{file}: the mapping names {', '.join(missing_mapped)} but the file has no such column; "
                f"its columns are {', '.join(headers)}",
                field=next(iter(n for n, c in self.columns.items() if c.source not in headers)),
            )
        resolved = {f.name: src for f in TAPE_FIELDS if (src := self.source_of(f.name, headers)) is not None}
        absent = [f for f in TAPE_FIELDS if f.required and f.name not in resolved]
        if "annual_rate" not in resolved and "fee_rate" not in resolved:
            absent.append(FIELDS_BY_NAME["annual_rate"])
        if absent:
            names = ", ".join(f"{f.name} ({f.label_zh})" for f in absent)
            raise TapeInvalid(
                f"{file}: no column for {names}; map it in the mapping file's `columns` "
                f"(e.g. `{absent[0].name}: {absent[0].label_zh}`)",
                field=absent[0].name,
            )
        return resolved

    def date_formats_of(self, name: str) -> tuple[str, ...]:
        col = self.columns.get(name)
        return col.formats if col is not None and col.formats else self.date_formats

    def unit_of(self, name: str) -> AmountUnit:
        col = self.columns.get(name)
        return col.unit if col is not None and col.unit else self.amount_unit

    def scale_of(self, name: str) -> RateScale:
        col = self.columns.get(name)
        return col.scale if col is not None and col.scale else self.rate_scale


def parse_mapping(data: Any, *, source: str = "mapping") -> TapeMapping:
    """Validate a mapping (from YAML) as a :class:`TapeMapping`; one clear error naming the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TapeInvalid(f"{source}: expected a mapping of tape-mapping fields, got {type(data).__name__}")
    try:
        return TapeMapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise TapeInvalid(describe_validation_error(exc, source=source), field=field) from None


def load_mapping(path: Path) -> TapeMapping:
    """Read and validate a mapping YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TapeInvalid(f"mapping {path}: cannot be read ({exc.strerror})", field="mapping") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TapeInvalid(f"mapping {path}: not valid YAML ({exc})", field="mapping") from None
    return parse_mapping(data, source=f"mapping {path}")


# --- conversion ------------------------------------------------------------------------------------------------
#
# Each kind is read by a fast parser over the whole column (a plain cast or one date format) and, for
# the few cells it cannot read, by a full parser over just those cells: trimmed, thousands separators
# and currency signs removed, percent signs, every date format. The full parser is the fast one after
# cleaning, so both agree wherever both read a cell.

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


def _identifier(raw: pl.Expr, dtype: pl.DataType, *, full: bool) -> pl.Expr:
    """An id as the book keys it: text, or a whole number 0 or more while ids are Int64."""
    if not ID_DTYPE.is_integer():
        text = _as_text(raw, dtype)
        return pl.when(text.str.len_bytes() > 0).then(text)
    if dtype.is_integer():
        return pl.when(raw >= 0).then(raw.cast(pl.Int64))
    text = _as_text(raw, dtype) if full or dtype != pl.String else raw
    number = text.cast(pl.Int64, strict=False)
    return pl.when(number >= 0).then(number)


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


# --- checks ----------------------------------------------------------------------------------------------------


class Reason(StrEnum):
    """Why a row was quarantined; the codes are stable (scripts filter on them)."""

    UNPARSEABLE = "type.unparseable"
    MISSING = "required.missing"
    NOT_POSITIVE = "range.not_positive"
    NEGATIVE = "range.negative"
    RATE_RANGE = "range.rate"
    TERM_RANGE = "range.term"
    START_AFTER_AS_OF = "date.start_after_as_of"
    DUE_BEFORE_START = "date.due_before_origination"
    CLOSED_BEFORE_START = "date.closed_before_origination"
    BALANCE_ABOVE_PRINCIPAL = "balance.above_principal"
    DPD_STATUS = "dpd.contradicts_status"
    DPD_AGE = "dpd.exceeds_loan_age"
    DPD_DUE_DATE = "dpd.contradicts_due_date"
    DUPLICATE_IN_FILE = "duplicate.in_file"
    DUPLICATE_LOADED = "duplicate.already_loaded"
    UNKNOWN_CUSTOMER = "reference.unknown_customer"


MAX_TERM_MONTHS = 360


@dataclass(frozen=True, slots=True)
class TapeRule:
    """One check: where ``fails`` is true the row breaks it; ``message`` says so, naming field and value."""

    reason: Reason
    column: str
    fails: pl.Expr
    message: pl.Expr


def _label(name: str) -> str:
    return f"`{name}` ({FIELDS_BY_NAME[name].label_zh})" if name in FIELDS_BY_NAME else f"`{name}`"


def _say(template: str, *values: pl.Expr) -> pl.Expr:
    """A per-row message: ``template`` with ``{}`` for each value (nulls shown as 'empty')."""
    return pl.format(template, *[v.cast(pl.String).fill_null("empty") for v in values])


def _given(name: str) -> pl.Expr:
    return _say("'{}'", pl.col(SRC + name))


def _expected_type(fld: TapeField, mapping: TapeMapping) -> str:
    if fld.kind is FieldKind.ID:
        return "an id (the book keys loans, customers and accounts by whole numbers)"
    if fld.kind is FieldKind.DATE:
        return "a date in " + " or ".join(mapping.date_formats_of(fld.name))
    if fld.kind is FieldKind.AMOUNT:
        unit = mapping.unit_of(fld.name)
        return "an amount in yuan with at most two decimals" if unit is AmountUnit.YUAN else "a whole number of fen"
    if fld.kind is FieldKind.INTEGER:
        return "a whole number"
    if fld.kind is FieldKind.RATE:
        return "a rate such as 0.18 or 18%"
    if fld.kind is FieldKind.METHOD:
        return (
            "a schedule method: " + ", ".join(m.value for m in Method) + " (or 等额本息, 等额本金, 等本等费, 先息后本)"
        )
    if fld.kind is FieldKind.STATUS:
        return "a status: " + ", ".join(s.value for s in TapeStatus) + " (or 正常, 逾期, 结清, 提前结清, 核销)"
    return "text"


def tape_rules(
    mapping: TapeMapping,
    *,
    as_of: date | None,
    loaded_loan_ids: pl.Series | None = None,
    known_customer_ids: pl.Series | None = None,
) -> list[TapeRule]:
    """Every check, in reporting order, as vectorized expressions over :func:`convert_tape`'s output.

    ``as_of`` is the tape's date, unless a row carries its own ``as_of`` (without a tape date, every row must). ``loaded_loan_ids`` are loans
    already in the book (a row repeating one is a duplicate); ``known_customer_ids``, when given, is the
    customer register every row's ``customer_id`` must be in.
    """
    c = pl.col
    tape_date = _tape_date(as_of)
    rules: list[TapeRule] = []

    for fld in TAPE_FIELDS:
        if fld.kind is FieldKind.TEXT:
            continue
        rules.append(
            TapeRule(
                Reason.UNPARSEABLE,
                fld.name,
                c(BAD + fld.name),
                _say(f"{_label(fld.name)}: {{}} is not {_expected_type(fld, mapping)}", _given(fld.name)),
            )
        )

    required = [f for f in TAPE_FIELDS if f.required or (f.name == "as_of" and as_of is None)]
    for fld in required:
        rules.append(
            TapeRule(
                Reason.MISSING,
                fld.name,
                c(fld.name).is_null() & ~c(BAD + fld.name),
                pl.lit(f"{_label(fld.name)} is empty; every loan needs it"),
            )
        )
    flat = c("method") == Method.FLAT_FEE.value
    rules.append(
        TapeRule(
            Reason.MISSING,
            "fee_rate",
            flat & c("fee_rate").is_null() & ~c(BAD + "fee_rate"),
            pl.lit(f"{_label('fee_rate')} is empty; a flat-fee (等本等费) loan is priced by its fee rate per period"),
        )
    )
    rules.append(
        TapeRule(
            Reason.MISSING,
            "annual_rate",
            c("method").is_not_null() & ~flat & c("annual_rate").is_null() & ~c(BAD + "annual_rate"),
            _say(f"{_label('annual_rate')} is empty; a {{}} loan is priced by its annual rate", c("method")),
        )
    )

    def before_start(field: str, reason: Reason, what: str) -> TapeRule:
        return TapeRule(
            reason,
            field,
            c(field) < c("originated_on"),
            _say(f"{_label(field)}: {{}} is {what} the loan's drawing date {{}}", c(field), c("originated_on")),
        )

    rules += [
        TapeRule(
            Reason.NOT_POSITIVE,
            "principal_fen",
            c("principal_fen") <= 0,
            _say(
                f"{_label('principal_fen')}: {{}} is not allowed; expected an amount more than 0",
                _given("principal_fen"),
            ),
        ),
        TapeRule(
            Reason.NEGATIVE,
            "principal_balance_fen",
            c("principal_balance_fen") < 0,
            _say(
                f"{_label('principal_balance_fen')}: {{}} is not allowed; expected 0 or more",
                _given("principal_balance_fen"),
            ),
        ),
        TapeRule(
            Reason.RATE_RANGE,
            "annual_rate",
            ~c("annual_rate").is_between(0.0, 1.0),
            _say(
                f"{_label('annual_rate')}: {{}} is not allowed; expected a fraction from 0 to 1", _given("annual_rate")
            ),
        ),
        TapeRule(
            Reason.RATE_RANGE,
            "fee_rate",
            ~c("fee_rate").is_between(0.0, 1.0),
            _say(f"{_label('fee_rate')}: {{}} is not allowed; expected a fraction from 0 to 1", _given("fee_rate")),
        ),
        TapeRule(
            Reason.TERM_RANGE,
            "term_months",
            ~c("term_months").is_between(1, MAX_TERM_MONTHS),
            _say(
                f"{_label('term_months')}: {{}} is not allowed; expected a whole number from 1 to {MAX_TERM_MONTHS}",
                _given("term_months"),
            ),
        ),
        TapeRule(
            Reason.NEGATIVE,
            "dpd",
            c("dpd") < 0,
            _say(f"{_label('dpd')}: {{}} is not allowed; expected 0 or more days", _given("dpd")),
        ),
        TapeRule(
            Reason.START_AFTER_AS_OF,
            "originated_on",
            c("originated_on") > tape_date,
            _say(f"{_label('originated_on')}: {{}} is after the tape's date {{}}", c("originated_on"), tape_date),
        ),
        before_start("first_due_on", Reason.DUE_BEFORE_START, "before"),
        before_start("maturity_on", Reason.DUE_BEFORE_START, "before"),
        before_start("oldest_unpaid_due_on", Reason.DUE_BEFORE_START, "before"),
        TapeRule(
            Reason.DUE_BEFORE_START,
            "maturity_on",
            c("maturity_on") < c("first_due_on"),
            _say(
                f"{_label('maturity_on')}: {{}} is before the first due date {{}}", c("maturity_on"), c("first_due_on")
            ),
        ),
        before_start("closed_on", Reason.CLOSED_BEFORE_START, "before"),
        TapeRule(
            Reason.BALANCE_ABOVE_PRINCIPAL,
            "principal_balance_fen",
            (c("principal_fen") > 0) & (c("principal_balance_fen") > c("principal_fen")),
            _say(
                f"{_label('principal_balance_fen')}: {{}} is above the principal lent {{}}",
                _given("principal_balance_fen"),
                _given("principal_fen"),
            ),
        ),
    ]

    dpd = c("dpd")
    not_late = c("status").is_in([TapeStatus.CURRENT.value, TapeStatus.PAID_OFF.value, TapeStatus.EARLY_SETTLED.value])
    age_days = (tape_date - c("originated_on")).dt.total_days()
    oldest_unpaid = c("oldest_unpaid_due_on")
    expected_dpd = pl.when(oldest_unpaid.is_not_null()).then(
        pl.max_horizontal((tape_date - oldest_unpaid).dt.total_days(), pl.lit(0))
    )
    rules += [
        TapeRule(
            Reason.DPD_STATUS,
            "dpd",
            (dpd > 0) & not_late,
            _say(f"{_label('dpd')}: {{}} days past due contradicts status {{}}", dpd, _given("status")),
        ),
        TapeRule(
            Reason.DPD_AGE,
            "dpd",
            dpd > age_days,
            _say(
                f"{_label('dpd')}: {{}} is more than the {{}} days since the loan was drawn on {{}}",
                dpd,
                age_days,
                c("originated_on"),
            ),
        ),
        TapeRule(
            Reason.DPD_DUE_DATE,
            "dpd",
            (dpd - expected_dpd).abs() > mapping.dpd_tolerance_days,
            _say(
                f"{_label('dpd')}: {{}} contradicts the oldest unpaid due date {{}}, "
                "which makes it {} days past due on {}",
                dpd,
                oldest_unpaid,
                expected_dpd,
                tape_date,
            ),
        ),
        TapeRule(
            Reason.DUPLICATE_IN_FILE,
            "loan_id",
            c("loan_id").is_not_null() & ~c("loan_id").is_first_distinct(),
            _say(f"{_label('loan_id')}: {{}} appears earlier in this file; the first row is kept", c("loan_id")),
        ),
    ]
    if loaded_loan_ids is not None:
        rules.append(
            TapeRule(
                Reason.DUPLICATE_LOADED,
                "loan_id",
                c("loan_id").is_in(loaded_loan_ids.implode()),
                _say(f"{_label('loan_id')}: {{}} is already in the book", c("loan_id")),
            )
        )
    if known_customer_ids is not None:
        rules.append(
            TapeRule(
                Reason.UNKNOWN_CUSTOMER,
                "customer_id",
                c("customer_id").is_not_null() & ~c("customer_id").is_in(known_customer_ids.implode()),
                _say(f"{_label('customer_id')}: {{}} is not a known customer", c("customer_id")),
            )
        )
    return rules


REJECTION_SCHEMA: dict[str, pl.DataType] = {
    ROW: pl.Int64(),
    "column": pl.String(),
    "reason": pl.String(),
    "message": pl.String(),
    "reasons": pl.List(pl.String()),
}


@dataclass(frozen=True, slots=True)
class TapeCheck:
    """The outcome of checking one tape: rows to load and rows to quarantine, which together are every row read."""

    accepted: pl.DataFrame  # typed tape fields of the rows that passed, with ``row``
    rejected: pl.DataFrame  # row, column, reason, message, reasons (REJECTION_SCHEMA)

    @property
    def read(self) -> int:
        return self.accepted.height + self.rejected.height

    @property
    def loaded(self) -> int:
        return self.accepted.height

    @property
    def quarantined(self) -> int:
        return self.rejected.height


def check_tape(converted: pl.DataFrame, rules: Sequence[TapeRule]) -> TapeCheck:
    """Run every rule over ``converted`` at once and split its rows into accepted and rejected.

    A rejected row's ``column``/``reason``/``message`` come from the first rule it breaks (in ``rules``
    order); ``reasons`` lists every rule it breaks.
    """
    flags = [f"__fail{i}" for i in range(len(rules))]
    first = pl.coalesce([pl.when(pl.col(f)).then(pl.lit(i, dtype=pl.Int32)) for i, f in enumerate(flags)])
    flagged = converted.with_columns(
        [r.fails.fill_null(False).alias(f) for r, f in zip(rules, flags, strict=True)]
    ).with_columns(first.alias("__first"))
    bad = pl.col("__first").is_not_null()
    fields = [f.name for f in TAPE_FIELDS]
    accepted = flagged.filter(~bad).select(ROW, *fields)
    failing = flagged.filter(bad)
    if failing.is_empty():
        return TapeCheck(accepted=accepted, rejected=pl.DataFrame(schema=REJECTION_SCHEMA))
    columns = [r.column for r in rules]
    reasons = [r.reason.value for r in rules]
    tagged = [f"{r.column}:{r.reason.value}" for r in rules]

    def pick(values: Sequence[str]) -> pl.Expr:
        return pl.col("__first").replace_strict(list(range(len(values))), list(values), return_dtype=pl.String)

    message = pl.coalesce([pl.when(pl.col("__first") == i).then(r.message) for i, r in enumerate(rules)])
    all_reasons = pl.concat_list(
        [pl.when(pl.col(f)).then(pl.lit(tag)) for f, tag in zip(flags, tagged, strict=True)]
    ).list.drop_nulls()
    rejected = failing.select(
        pl.col(ROW),
        pick(columns).alias("column"),
        pick(reasons).alias("reason"),
        message.alias("message"),
        all_reasons.list.unique(maintain_order=True).alias("reasons"),
    )
    check = TapeCheck(accepted=accepted, rejected=rejected)
    if check.read != converted.height:
        raise AssertionError(f"read {converted.height} != loaded {check.loaded} + quarantined {check.quarantined}")
    return check


def quarantine_rows(raw: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """The rejected rows as given: ``rejected`` plus ``raw``, the source row as a JSON object of text cells."""
    if rejected.is_empty():
        return rejected.with_columns(pl.lit(None, dtype=pl.String).alias("raw"))
    text = raw.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    cells = [c for c in raw.columns]
    picked = text.join(rejected.select(ROW), on=ROW, how="semi").select(
        ROW,
        pl.struct([pl.col(c).cast(pl.String) for c in cells]).struct.json_encode().alias("raw"),
    )
    return rejected.join(picked, on=ROW, how="left").sort(ROW)


# --- from tape to book -----------------------------------------------------------------------------------------


def _months_after(day: pl.Expr, months: pl.Expr) -> pl.Expr:
    """``day`` plus ``months`` calendar months, clamped to month end (as ``runoff.calendar.add_months``)."""
    return day.dt.offset_by(pl.format("{}mo", months))


def book_loans(accepted: pl.DataFrame) -> pl.DataFrame:
    """The ``loans`` table rows (``runoff.portfolio.schemas.LOANS``) of accepted tape rows.

    What a tape leaves out is derived the way the book defines it: the account is the customer's
    one credit line (account id = customer id), the product is named after the method
    (``tape-<method>``), the first installment falls due a month after drawing and the last ``term``
    months after it (month-end clamp), the status follows the balance (0 → paid-off, else active).
    """
    c = pl.col
    frame = accepted.with_columns(
        c("account_id").fill_null(c("customer_id")),
        c("product_id").fill_null(pl.lit("tape-") + c("method")),
        c("first_due_on").fill_null(_months_after(c("originated_on"), pl.lit(1))),
        c("maturity_on").fill_null(_months_after(c("originated_on"), c("term_months"))),
        c("originated_on").dt.strftime("%Y-%m").alias("vintage"),
        _book_status().alias("status"),
    )
    return LOANS.conform(frame)


def _book_status() -> pl.Expr:
    """``loans.status`` from the tape's status, else from the balance (0 → paid-off), else active."""
    c = pl.col
    return pl.coalesce(
        c("status").replace_strict({s.value: s.book_status for s in TapeStatus}, default=None, return_dtype=pl.String),
        pl.when(c("principal_balance_fen") == 0).then(pl.lit("paid-off")),
        pl.lit("active"),
    )


POSITION_SCHEMA: dict[str, pl.DataType] = {
    "loan_id": ID_DTYPE,
    "as_of": pl.Date(),
    "status": pl.String(),
    "principal_balance_fen": pl.Int64(),
    "dpd": pl.Int32(),
    "oldest_unpaid_due_on": pl.Date(),
}


def _tape_date(as_of: date | None) -> pl.Expr:
    """The date a row describes: its own ``as_of`` (数据日期) when the tape has one, else the tape's."""
    own = pl.col("as_of")
    return own if as_of is None else own.fill_null(pl.lit(as_of, dtype=pl.Date))


def read_ids(values: pl.Series) -> pl.Series:
    """Identifiers as the book keys them (e.g. a customer tape's 客户号); unreadable ones become null."""
    return pl.select(_identifier(pl.lit(values), values.dtype, full=True).cast(ID_DTYPE)).to_series().alias(values.name)


def tape_positions(accepted: pl.DataFrame, *, as_of: date | None) -> pl.DataFrame:
    """Each accepted loan's position on the tape's date: status, principal balance, DPD, oldest unpaid due date.

    A tape that gives no balance leaves it null (the ledger then keeps the schedule's); no DPD means 0
    unless an oldest unpaid due date says otherwise (DPD counts from it, 逾期天数).
    """
    c = pl.col
    tape_date = _tape_date(as_of)
    derived_dpd = pl.max_horizontal((tape_date - c("oldest_unpaid_due_on")).dt.total_days(), pl.lit(0))
    return accepted.select(
        c("loan_id"),
        tape_date.alias("as_of"),
        _book_status().alias("status"),
        c("principal_balance_fen"),
        pl.coalesce(c("dpd"), derived_dpd, pl.lit(0)).cast(pl.Int32).alias("dpd"),
        c("oldest_unpaid_due_on"),
    )


# --- from book to tape (the inverse: example tapes and round trips) --------------------------------------------

METHOD_NAMES_ZH: dict[str, str] = {
    Method.EQUAL_INSTALLMENT.value: "等额本息",
    Method.EQUAL_PRINCIPAL.value: "等额本金",
    Method.FLAT_FEE.value: "等本等费",
    Method.INTEREST_ONLY.value: "先息后本",
}
STATUS_NAMES_ZH: dict[str, str] = {
    TapeStatus.CURRENT.value: "正常",
    TapeStatus.OVERDUE.value: "逾期",
    TapeStatus.PAID_OFF.value: "结清",
    TapeStatus.EARLY_SETTLED.value: "提前结清",
    TapeStatus.CHARGED_OFF.value: "核销",
}


def tape_from_book(loans: pl.DataFrame, performance: pl.DataFrame, *, as_of: date) -> pl.DataFrame:
    """The loan tape a lender would cut from a book on ``as_of``: the ``loans`` columns plus each loan's
    latest month-end position (balance, DPD, status; 逾期 when active with DPD above 0), in tape fields."""
    c = pl.col
    latest = (
        performance.filter(c("month_end") <= as_of)
        .sort("loan_id", "month_end")
        .group_by("loan_id", maintain_order=True)
        .last()
        .select("loan_id", "principal_balance_fen", "dpd")
    )
    status = (
        pl.when(c("status") != "active")
        .then(c("status"))
        .when(c("dpd") > 0)
        .then(pl.lit(TapeStatus.OVERDUE.value))
        .otherwise(pl.lit(TapeStatus.CURRENT.value))
    )
    tape = (
        loans.filter(c("originated_on") <= as_of)
        .join(latest, on="loan_id", how="left")
        .with_columns(
            status.alias("status"),
            c("dpd").cast(pl.Int64),
            pl.lit(None, dtype=pl.Date).alias("oldest_unpaid_due_on"),
            pl.lit(as_of, dtype=pl.Date).alias("as_of"),
        )
    )
    return tape.select([c(f.name).cast(DTYPES[f.kind]) for f in TAPE_FIELDS])


def _yuan_text(fen: pl.Expr) -> pl.Expr:
    sign = pl.when(fen < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = fen.abs() // 100
    cents = (fen.abs() % 100).cast(pl.String).str.zfill(2)
    return pl.format("{}{}.{}", sign, whole, cents)


def tape_in_source_columns(tape: pl.DataFrame, mapping: TapeMapping) -> pl.DataFrame:
    """A tape (tape fields) written the way ``mapping`` reads it: source headers, each column's first date
    format, amounts in its unit, rates in its scale, methods and statuses in Chinese. The inverse of
    :func:`convert_tape` for the columns the mapping names."""
    exprs: list[pl.Expr] = []
    for fld in TAPE_FIELDS:
        col = mapping.columns.get(fld.name)
        if col is None or fld.name not in tape.columns:
            continue
        value = pl.col(fld.name).cast(DTYPES[fld.kind])
        if fld.kind is FieldKind.DATE:
            text = value.dt.strftime(mapping.date_formats_of(fld.name)[0])
        elif fld.kind is FieldKind.AMOUNT:
            text = _yuan_text(value) if mapping.unit_of(fld.name) is AmountUnit.YUAN else value.cast(pl.String)
        elif fld.kind is FieldKind.RATE:
            scaled = value * 100 if mapping.scale_of(fld.name) is RateScale.PERCENT else value
            text = scaled.round(8).cast(pl.String)
        elif fld.kind is FieldKind.METHOD:
            text = value.replace_strict(METHOD_NAMES_ZH, default=value)
        elif fld.kind is FieldKind.STATUS:
            text = value.replace_strict(STATUS_NAMES_ZH, default=value)
        else:
            text = value.cast(pl.String)
        exprs.append(text.alias(col.source))
    return tape.select(exprs)
