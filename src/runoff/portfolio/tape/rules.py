"""The checks (校验规则) as vectorized Polars expressions, and the split of a tape into accepted and rejected rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import polars as pl

from runoff.portfolio.tape.convert import BAD, SRC
from runoff.portfolio.tape.fields import (
    FIELDS_BY_NAME,
    MAX_REF_LENGTH,
    REF_DTYPE,
    ROW,
    TAPE_FIELDS,
    FieldKind,
    TapeField,
    TapeStatus,
    row_date,
)
from runoff.portfolio.tape.mapping import AmountUnit, TapeMapping
from runoff.servicing.product import Method


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
        return f"a reference of 1 to {MAX_REF_LENGTH} characters"
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
    loaded_loan_refs: pl.Series | None = None,
    known_customer_refs: pl.Series | None = None,
) -> list[TapeRule]:
    """Every check, in reporting order, as vectorized expressions over :func:`convert_tape`'s output.

    ``as_of`` is the tape's date, unless a row carries its own ``as_of`` (without a tape date, every row
    must). Ids are checked on the lender's references (借据号, 客户号), before any book id is assigned:
    ``loaded_loan_refs`` are the references of loans already in the book (a row repeating one is a
    duplicate); ``known_customer_refs``, when given, is the customer register every row's customer
    reference must be in. Whole numbers may be given as numbers.
    """
    c = pl.col
    tape_date = row_date(as_of)
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
            _say(f"{_label('loan_id')}: '{{}}' appears earlier in this file; the first row is kept", c("loan_id")),
        ),
    ]
    if loaded_loan_refs is not None:
        rules.append(
            TapeRule(
                Reason.DUPLICATE_LOADED,
                "loan_id",
                c("loan_id").is_in(_refs(loaded_loan_refs).implode()),
                _say(f"{_label('loan_id')}: '{{}}' is already in the book", c("loan_id")),
            )
        )
    if known_customer_refs is not None:
        rules.append(
            TapeRule(
                Reason.UNKNOWN_CUSTOMER,
                "customer_id",
                c("customer_id").is_not_null() & ~c("customer_id").is_in(_refs(known_customer_refs).implode()),
                _say(f"{_label('customer_id')}: '{{}}' is not a known customer", c("customer_id")),
            )
        )
    return rules


def _refs(values: pl.Series) -> pl.Series:
    return values.cast(REF_DTYPE)


REJECTION_SCHEMA: dict[str, pl.DataType] = {
    ROW: pl.Int64(),
    "loan_ref": REF_DTYPE,
    "column": pl.String(),
    "reason": pl.String(),
    "message": pl.String(),
    "reasons": pl.List(pl.String()),
}


@dataclass(frozen=True, slots=True)
class TapeCheck:
    """The outcome of checking one tape: rows to load and rows to quarantine, which together are every row read."""

    accepted: pl.DataFrame  # typed tape fields of the rows that passed, with ``row``
    rejected: pl.DataFrame  # row, loan_ref, column, reason, message, reasons (REJECTION_SCHEMA)

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
    # Select before filtering: copying the flags and the cells as given for a million good rows is the slow part.
    accepted = flagged.select(ROW, *fields, "__first").filter(~bad).drop("__first")
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
        pl.col("loan_id").cast(REF_DTYPE).alias("loan_ref"),
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
    ordered = rejected.sort(ROW)
    picked = raw[ordered.get_column(ROW) - 1]  # row n is the n-th data row
    cells = pl.struct([pl.col(c).cast(pl.String) for c in raw.columns]).struct.json_encode()
    return ordered.with_columns(picked.select(cells.alias("raw")).to_series())
