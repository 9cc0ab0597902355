"""A million offers at once: the price checks of :mod:`runoff.compliance.offers` as Polars expressions.

``check_offers_frame`` takes the offers table the pricer writes (one row per account and option, rates as
float fractions) and returns a findings table with the columns of
:data:`~runoff.compliance.findings.FINDINGS_SCHEMA`. It runs the checks that matter at volume — annualised
rate caps (fixed, multiples of a dated reference such as 4 × LPR, dated and keyed tables), early-settlement
compensation caps and interest beyond the settlement date — with the same selection (rule in force on
each row's ``offered_on``, the customer's region, ``when``/``unless`` conditions) and the same severities
as the row-by-row :func:`~runoff.compliance.offers.check_offer`, which remains the one to use for the
other offer rules (disclosure, dates, prohibitions) on a single offer.

Floats are compared with a tolerance of 1e-9 (a rate) and half a cent (an amount); the Decimal path is exact.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import polars as pl

from runoff.compliance.checks import (
    CapRow,
    RateCap,
    SettlementCompensationCap,
    SettlementInterest,
    _Check,
)
from runoff.compliance.facts import OfferFacts, OptionKind
from runoff.compliance.findings import FINDINGS_SCHEMA, effective_severity, effective_status, pct
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import Rule, RulePack
from runoff.compliance.selection import RuleBook, rule_book
from runoff.compliance.taxonomy import Severity
from runoff.errors import InvalidInput

REQUIRED_COLUMNS = ("offer_id", "option", "offered_on", "apr_nominal")
_RATE_EPS = 1e-9
_AMOUNT_EPS = 0.005 - 1e-9
_FRAME_CHECKS = (RateCap, SettlementCompensationCap, SettlementInterest)


_COLUMN_TYPES: tuple[tuple[type, type[pl.DataType]], ...] = (
    (bool, pl.Boolean),  # before int: bool is an int
    (int, pl.Int64),
    (Decimal, pl.Float64),
    (date, pl.Date),
)


def _column_type(annotation: Any) -> type[pl.DataType]:
    """The Polars type of an OfferFacts field: dates stay dates, money and rates become Float64."""
    for arg in typing.get_args(annotation) or (annotation,):
        if typing.get_origin(arg) is typing.Annotated:
            arg = typing.get_args(arg)[0]
        for python_type, dtype in _COLUMN_TYPES:
            if isinstance(arg, type) and issubclass(arg, python_type):
                return dtype
    return pl.String


def _default(name: str) -> pl.Expr:
    field = OfferFacts.model_fields[name]
    value = field.default
    if hasattr(value, "value"):
        value = value.value
    elif value is not None and not isinstance(value, bool | int | str | float):
        value = float(value)
    return pl.lit(value, dtype=_column_type(field.annotation)).alias(name)


def _prepare(offers: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in offers.columns]
    if missing:
        raise InvalidInput(
            f"offers table lacks column(s) {', '.join(missing)}; expected at least {', '.join(REQUIRED_COLUMNS)}",
            field=missing[0],
        )
    if offers.schema["offered_on"] != pl.Date:
        raise InvalidInput(
            f"`offered_on`: column of type {offers.schema['offered_on']} is not allowed; expected a Date column",
            field="offered_on",
        )
    extra = [
        _default(name)
        for name in OfferFacts.model_fields
        if name not in offers.columns and name not in ("payments", "apr_effective")
    ]
    frame = offers.with_columns(extra) if extra else offers
    untyped = [  # an all-empty column arrives as Null: give it the facts' type
        pl.col(name).cast(_column_type(OfferFacts.model_fields[name].annotation))
        for name, dtype in frame.schema.items()
        if dtype == pl.Null and name in OfferFacts.model_fields
    ]
    frame = frame.with_columns(untyped) if untyped else frame
    frame = frame.with_columns(pl.col("offer_id").cast(pl.String), pl.col("apr_nominal").cast(pl.Float64))
    if "apr_effective" not in frame.columns:
        k = pl.col("periods_per_year").cast(pl.Float64)
        frame = frame.with_columns(((1 + pl.col("apr_nominal") / k).pow(k) - 1).alias("apr_effective"))
    return frame


def pct_expr(rate: pl.Expr) -> pl.Expr:
    """The float-side twin of :func:`~runoff.compliance.findings.pct`: "24.36%"."""
    basis_points = (rate * 10000).round(0).cast(pl.Int64)
    return pl.format(
        "{}.{}%",
        basis_points // 100,
        (basis_points % 100).cast(pl.String).str.zfill(2),
    )


def _amount_expr(amount: pl.Expr) -> pl.Expr:
    cents = (amount * 100).round(0).cast(pl.Int64)
    return pl.format("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))


def _condition(check: _Check) -> pl.Expr:
    expr = pl.lit(True)
    for name, expected in check.when.items():
        col = pl.col(name)
        expr = expr & (col.is_in(list(expected)) if isinstance(expected, tuple) else col == expected).fill_null(False)
    for name, expected in check.unless.items():
        col = pl.col(name)
        hit = (col.is_in(list(expected)) if isinstance(expected, tuple) else col == expected).fill_null(False)
        expr = expr & ~hit
    return expr


def _in_force(rule: Rule) -> pl.Expr:
    expr = pl.lit(True)
    if rule.effective_from is not None:
        expr = expr & (pl.col("offered_on") >= rule.effective_from)
    if rule.effective_to is not None:
        expr = expr & (pl.col("offered_on") < rule.effective_to)
    return expr


def _covers_region(rule: Rule, regions: Sequence[str]) -> pl.Expr:
    matching = [r for r in regions if rule.applies_to_region(r)]
    return pl.col("region").is_in(matching).fill_null(False) | (
        pl.col("region").is_null() & pl.lit(rule.applies_to_region(None))
    )


def _findings(
    frame: pl.LazyFrame,
    mask: pl.Expr,
    rule: Rule,
    check: _Check,
    profile: LenderProfile,
    *,
    value: pl.Expr,
    text: pl.Expr,
    severity: Severity | None = None,
) -> pl.LazyFrame:
    status = effective_status(rule, check)
    sev = severity or effective_severity(rule, check, profile)
    return frame.filter(mask).select(
        pl.lit(rule.id).alias("rule_id"),
        pl.lit(sev.value).alias("severity"),
        pl.lit(status.value).alias("status"),
        pl.lit(check.kind.value).alias("kind"),
        pl.lit("offer").alias("object_kind"),
        pl.col("offer_id").alias("object_id"),
        pl.col("customer_id").cast(pl.String),
        pl.col("offered_on").alias("on"),
        value.cast(pl.String).alias("value"),
        pl.lit(check.describe()).alias("parameter"),
        pl.lit(rule.citation).alias("citation"),
        pl.format("{} ({}): {}", pl.lit(rule.id), pl.lit(status.label), text).alias("message"),
    )


def _row_applies(row: CapRow, on: pl.Expr) -> pl.Expr:
    expr = pl.lit(True)
    if row.from_ is not None:
        expr = expr & (on >= row.from_)
    if row.to is not None:
        expr = expr & (on < row.to)
    if row.region is not None:
        expr = expr & ((pl.col("region") == row.region) | pl.col("region").str.starts_with(row.region + "-")).fill_null(
            False
        )
    if row.product_class is not None:
        expr = expr & (pl.col("product_class") == row.product_class.value)
    return expr


def _rate_cap(
    frame: pl.LazyFrame, base: pl.Expr, rule: Rule, check: RateCap, profile: LenderProfile, book: RuleBook
) -> list[pl.LazyFrame]:
    on = pl.col("offered_on")
    if check.date_basis == "formation-date":
        on = pl.col("formation_date").fill_null(pl.col("offered_on"))
    out = []
    if check.max_rate is not None:
        cap = pl.lit(float(check.max_rate))
        rate = pl.col(f"apr_{check.basis}")
        basis = pl.lit(check.basis)
        how = pl.lit(pct(check.max_rate))
    elif check.reference is not None:
        assert check.multiple is not None
        series = book.references[check.reference]
        value: pl.Expr = pl.lit(None, dtype=pl.Float64)
        for row in series.rows:
            value = pl.when(on >= row.from_).then(pl.lit(float(row.value))).otherwise(value)
        cap = value * float(check.multiple)
        rate = pl.col(f"apr_{check.basis}")
        basis = pl.lit(check.basis)
        how = pl.format(
            "{} ({} × {} {} on {})",
            pct_expr(cap),
            pl.lit(str(check.multiple)),
            pl.lit(check.reference),
            pct_expr(value),
            on.cast(pl.String),
        )
        out.append(
            _findings(
                frame,
                base & value.is_null(),
                rule,
                check,
                profile,
                value=pl.lit("(missing)"),
                text=pl.format(
                    "offer {} cannot be checked: `{}` not given", pl.col("offer_id"), pl.lit(check.reference)
                ),
                severity=Severity.WARN,
            )
        )
    else:
        cap = pl.lit(None, dtype=pl.Float64)
        rate = pl.lit(None, dtype=pl.Float64)
        basis = pl.lit(None, dtype=pl.String)
        how = pl.lit(None, dtype=pl.String)
        for cap_row in reversed(check.table):  # built from the last row so the first matching row wins
            applies = _row_applies(cap_row, on)
            where = f" in {cap_row.region}" if cap_row.region else ""
            per = "" if cap_row.per == "year" else f" ({pct(cap_row.max_rate)} a {cap_row.per})"
            cap = pl.when(applies).then(pl.lit(float(cap_row.annual_rate))).otherwise(cap)
            rate = pl.when(applies).then(pl.col(f"apr_{cap_row.basis}")).otherwise(rate)
            basis = pl.when(applies).then(pl.lit(cap_row.basis)).otherwise(basis)
            how = pl.when(applies).then(pl.lit(f"{pct(cap_row.annual_rate)}{per}{where}")).otherwise(how)
    above = (rate > cap + _RATE_EPS).fill_null(False)
    out.append(
        _findings(
            frame,
            base & above,
            rule,
            check,
            profile,
            value=pct_expr(rate),
            text=pl.format(
                "{} offer {} has an annualised rate ({}) of {}, above the cap of {}",
                pl.col("option"),
                pl.col("offer_id"),
                basis,
                pct_expr(rate),
                how,
            ),
        )
    )
    if check.warn_above is not None:
        band = (rate > float(check.warn_above) + _RATE_EPS).fill_null(False) & ~above
        out.append(
            _findings(
                frame,
                base & band,
                rule,
                check,
                profile,
                value=pct_expr(rate),
                text=pl.format(
                    "{} offer {} has an annualised rate ({}) of {}, in the monitored band above {}",
                    pl.col("option"),
                    pl.col("offer_id"),
                    basis,
                    pct_expr(rate),
                    pl.lit(pct(check.warn_above)),
                ),
                severity=Severity.WARN,
            )
        )
    return out


def _compensation(
    frame: pl.LazyFrame, base: pl.Expr, rule: Rule, check: SettlementCompensationCap, profile: LenderProfile
) -> list[pl.LazyFrame]:
    settling = base & (pl.col("option") == OptionKind.EARLY_SETTLEMENT.value)
    months = pl.col("remaining_months")
    rate = pl.when(months > check.threshold_months).then(float(check.rate_long)).otherwise(float(check.rate_short))
    by_rate = rate * pl.col("amount_repaid_early")
    caps = [by_rate]
    if check.within_remaining_interest:
        caps.append(pl.col("interest_to_agreed_end"))
    if check.within_creditor_cost:
        caps.append(pl.col("creditor_cost"))
    allowed = pl.min_horizontal(caps)
    why = (
        pl.when(allowed == pl.col("creditor_cost"))
        .then(pl.lit("the creditor's cost"))
        .when(allowed == pl.col("interest_to_agreed_end"))
        .then(pl.lit("the interest to the agreed end"))
        .otherwise(
            pl.format(
                "{} of {} repaid early, {} months left",
                pct_expr(rate),
                _amount_expr(pl.col("amount_repaid_early")),
                months,
            )
        )
    )
    fixed = pl.col("fixed_rate").fill_null(True)
    if check.fixed_rate_only:
        allowed = pl.when(fixed).then(allowed).otherwise(0.0)
        why = pl.when(fixed).then(why).otherwise(pl.lit("no compensation when the borrowing rate is not fixed"))
        evaluable = ~fixed | months.is_not_null()
    else:
        evaluable = months.is_not_null()
    allowed = allowed.round(2)
    fee = pl.col("settlement_fee")
    return [
        _findings(
            frame,
            settling & evaluable & (fee > allowed + _AMOUNT_EPS).fill_null(False),
            rule,
            check,
            profile,
            value=_amount_expr(fee),
            text=pl.format(
                "early settlement {} charges compensation of {}, at most {} allowed ({})",
                pl.col("offer_id"),
                _amount_expr(fee),
                _amount_expr(allowed),
                why,
            ),
        ),
        _findings(
            frame,
            settling & ~evaluable,
            rule,
            check,
            profile,
            value=pl.lit("(missing)"),
            text=pl.format("offer {} cannot be checked: `remaining_months` not given", pl.col("offer_id")),
            severity=Severity.WARN,
        ),
    ]


def _settlement_interest(
    frame: pl.LazyFrame, base: pl.Expr, rule: Rule, check: SettlementInterest, profile: LenderProfile
) -> list[pl.LazyFrame]:
    charged, accrued = pl.col("interest_charged"), pl.col("interest_accrued_to_settlement")
    mask = base & (pl.col("option") == OptionKind.EARLY_SETTLEMENT.value) & (charged > accrued + _AMOUNT_EPS)
    settled = pl.col("settlement_date").cast(pl.String).fill_null("")
    return [
        _findings(
            frame,
            mask.fill_null(False),
            rule,
            check,
            profile,
            value=_amount_expr(charged),
            text=pl.format(
                "early settlement {} charges interest of {}, only {} accrued to the settlement date {}",
                pl.col("offer_id"),
                _amount_expr(charged),
                _amount_expr(accrued),
                settled,
            ),
        )
    ]


def check_offers_frame(
    offers: pl.DataFrame,
    profile: LenderProfile,
    *,
    packs: Sequence[RulePack] | None = None,
    book: RuleBook | None = None,
) -> pl.DataFrame:
    """Check every row of an offers table against rate caps, compensation caps and settlement interest.

    Required columns: ``offer_id``, ``option``, ``offered_on`` (Date), ``apr_nominal`` (float fraction).
    Any other :class:`~runoff.compliance.facts.OfferFacts` field may be a column (``region``,
    ``product_class``, ``formation_date``, ``apr_effective``, ``settlement_fee``, ``remaining_months``, ...);
    a missing one takes the facts model's default. Returns one row per finding.
    """
    book = rule_book(profile, packs, book)
    frame = _prepare(offers)
    regions = [r for r in frame.get_column("region").unique().to_list() if r is not None]
    lazy = frame.lazy()
    parts: list[pl.LazyFrame] = []
    for rule in book.rules:
        for check in rule.parameters:
            if not isinstance(check, _FRAME_CHECKS):
                continue
            if check.lender_types is not None and profile.lender_type not in check.lender_types:
                continue
            if check.collector_types is not None and profile.default_collector not in check.collector_types:
                continue
            base = _in_force(rule) & _covers_region(rule, regions) & _condition(check)
            if isinstance(check, RateCap):
                parts.extend(_rate_cap(lazy, base, rule, check, profile, book))
            elif isinstance(check, SettlementCompensationCap):
                parts.extend(_compensation(lazy, base, rule, check, profile))
            else:
                parts.extend(_settlement_interest(lazy, base, rule, check, profile))
    if not parts:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    found = pl.concat(parts, how="vertical_relaxed").collect()
    return found.select([pl.col(name).cast(dtype) for name, dtype in FINDINGS_SCHEMA.items()])
