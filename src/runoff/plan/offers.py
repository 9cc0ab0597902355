"""Offers (客户选项报价): every option its segment allows, priced for every open loan, valued for the lender.

For each loan and each option of its segment the offers table gives the new schedule's terms, what falls
due now, the total cost, the APR by IRR of the new schedule (or, for a settlement, of the current period's
flows), the saving against carrying on under the current schedule, the expected value to the lender and an
affordability check against the customer's income. Pricing is vectorized (:mod:`runoff.plan.pricing`) and
agrees with the Decimal quotes of :mod:`runoff.servicing.quotes` to the cent; :func:`quote_option` is that
Decimal quote for one loan and one option (acceptance uses it, and the loans the vectorized path does not
cover: daily interest, non-monthly products).

Expected value (present value to the lender, in fen, floats): cash flows discounted at the plan's
``discount_rate`` and weighted by the probability the account has not defaulted by then (a constant monthly
hazard from its 12-month PD, times the option's ``pd_multiplier``), plus ``1 − LGD`` of the principal
outstanding when a default happens. What falls due now is taken as paid now. ``ev_gain`` is the option's
value less the value of the original schedule; ``expected_value`` weighs the gain by the take-up.

Affordability: a re-schedule is affordable when the account's next monthly payments, with this loan's
replaced by the new schedule's largest installment, are at most ``max_payment_to_income`` of the monthly
income; a settlement when what is paid now is at most ``max_settlement_to_income`` months of income.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from runoff.errors import InvalidInput, RunoffError
from runoff.money import RoundingMode, to_minor
from runoff.plan.checks import BookFigures
from runoff.plan.model import (
    EarlySettlementOption,
    ExtensionOption,
    HardshipHolidayOption,
    Plan,
    RestructuringOption,
)
from runoff.plan.pricing import (
    SETTLE_ACCRUED,
    SETTLE_CURRENT_PERIOD,
    SETTLE_NONE,
    period_irr,
    reschedule,
    round_div,
    settle,
    settlement_apr,
)
from runoff.plan.quoting import OptionSpec, quote_columns, quote_option, restructured_price
from runoff.plan.segments import account_features, assign_segments, offer_candidates
from runoff.plan.value import original_schedule_value, quote_value, schedule_value
from runoff.servicing.position import LoanPosition
from runoff.servicing.product import GraceKind, InterestBasis, Method, Product, SettlementInterest
from runoff.servicing.vectorized import METHOD_CODES, RATE_SCALE, rate_units

LoanKey = Any
PositionSource = Callable[[Sequence[LoanKey]], Mapping[LoanKey, LoanPosition]]
"""Gives the servicing positions of some loans (the exact path): from the ledger, or rebuilt from rows."""

CANDIDATE_COLUMNS = ("segment", "pd", "income_fen", "account_payment_fen", "region", "ev_original")
"""Columns the pricer needs besides :func:`runoff.plan.loan_state.loan_states`' (from the account features)."""

OFFER_SCHEMA: dict[str, pl.DataType] = {
    "offer_id": pl.String(),
    "plan_id": pl.String(),
    "loan_id": pl.String(),
    "account_id": pl.String(),
    "customer_id": pl.String(),
    "segment": pl.String(),
    "option_id": pl.String(),
    "option": pl.String(),
    "offered_on": pl.Date(),
    "region": pl.String(),
    "product_id": pl.String(),
    "formation_date": pl.Date(),
    "method": pl.String(),
    "term": pl.Int64(),
    "annual_rate": pl.Float64(),
    "fee_rate": pl.Float64(),
    "principal_fen": pl.Int64(),
    "due_now_principal_fen": pl.Int64(),
    "due_now_interest_fen": pl.Int64(),
    "due_now_fee_fen": pl.Int64(),
    "due_now_penalty_fen": pl.Int64(),
    "waived_fen": pl.Int64(),
    "credit_applied_fen": pl.Int64(),
    "pay_now_fen": pl.Int64(),
    "schedule_total_fen": pl.Int64(),
    "total_cost_fen": pl.Int64(),
    "current_remaining_fen": pl.Int64(),
    "saving_fen": pl.Int64(),
    "forgiven_principal_fen": pl.Int64(),
    "capitalized_fen": pl.Int64(),
    "installment_fen": pl.Int64(),
    "first_due": pl.Date(),
    "maturity": pl.Date(),
    "apr_nominal": pl.Float64(),
    "apr_effective": pl.Float64(),
    "interest_charged_fen": pl.Int64(),
    "interest_accrued_fen": pl.Int64(),
    "settlement_fee_fen": pl.Int64(),
    "amount_repaid_early_fen": pl.Int64(),
    "remaining_months": pl.Int64(),
    "interest_to_agreed_end_fen": pl.Int64(),
    "original_maturity": pl.Date(),
    "pd": pl.Float64(),
    "take_up": pl.Float64(),
    "ev_option": pl.Float64(),
    "ev_original": pl.Float64(),
    "ev_gain": pl.Float64(),
    "expected_value": pl.Float64(),
    "payment_to_income_after": pl.Float64(),
    "affordable": pl.Boolean(),
    "exact": pl.Boolean(),
}
"""The offers table (``data/offers/<plan>/part-*.parquet``): one row per loan and option, amounts in fen."""

SKIPPED_SCHEMA: dict[str, pl.DataType] = {
    "loan_id": pl.String(),
    "segment": pl.String(),
    "option_id": pl.String(),
    "reason": pl.String(),
}


@dataclass(frozen=True, slots=True)
class OfferBook:
    """Priced offers and the (loan, option) pairs that could not be offered, with why."""

    offers: pl.DataFrame
    skipped: pl.DataFrame


# --- option terms per loan ------------------------------------------------------------------------------------------


# --- product terms as columns ---------------------------------------------------------------------------------------


def _units(value: Decimal) -> int | None:
    scaled = value * RATE_SCALE
    return int(scaled) if scaled == scaled.to_integral_value() else None


def pricing_terms(products: Sequence[Product]) -> pl.DataFrame:
    """Per product: rounding, multiple, grace kind, business-day rule and settlement rule, and whether the
    vectorized path covers it (monthly, period-basis interest, rates in 1e-8 units)."""
    rows = []
    for p in products:
        es = p.early_settlement
        fee_units = _units(es.fee_rate_of_remaining_principal)
        multiple = p.rounding.multiple_of
        multiple_fen = int(multiple * 100) if multiple is not None and multiple * 100 == int(multiple * 100) else 0
        rows.append(
            {
                "product_id": p.id,
                "p_half_even": p.rounding.mode is RoundingMode.HALF_EVEN,
                "p_multiple_fen": multiple_fen,
                "p_capitalize": p.grace_kind is GraceKind.CAPITALIZE,
                "p_bdr": p.business_day_rule.value,
                "p_country": p.holiday_country,
                "p_settle_rule": {
                    SettlementInterest.ACCRUED_TO_DATE: SETTLE_ACCRUED,
                    SettlementInterest.CURRENT_PERIOD: SETTLE_CURRENT_PERIOD,
                    SettlementInterest.NONE: SETTLE_NONE,
                }[es.interest],
                "p_fees_waived": es.remaining_flat_fees_waived,
                "p_settle_fee_units": fee_units or 0,
                "p_settle_flat_fen": to_minor(es.flat_fee),
                "p_vector": (
                    p.frequency.periods_per_year == 12
                    and p.interest_basis is InterestBasis.PERIOD
                    and fee_units is not None
                    and (multiple is None or multiple_fen > 0)
                ),
            }
        )
    schema = {
        "product_id": pl.String,
        "p_half_even": pl.Boolean,
        "p_multiple_fen": pl.Int64,
        "p_capitalize": pl.Boolean,
        "p_bdr": pl.String,
        "p_country": pl.String,
        "p_settle_rule": pl.Int8,
        "p_fees_waived": pl.Boolean,
        "p_settle_fee_units": pl.Int64,
        "p_settle_flat_fen": pl.Int64,
        "p_vector": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


# --- the vectorized path --------------------------------------------------------------------------------------------


def _col(frame: pl.DataFrame, name: str, dtype: Any = np.int64) -> np.ndarray:
    return frame.get_column(name).to_numpy().astype(dtype, copy=False)


def _days(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame.get_column(name).cast(pl.Date).to_numpy().astype("datetime64[D]")


def _price_settlement(chunk: pl.DataFrame, option: EarlySettlementOption, as_of: date) -> dict[str, Any]:
    n = chunk.height
    today = np.datetime64(as_of, "D")
    has_future = _col(chunk, "n_future") > 0
    start = _days(chunk, "period_start")
    due = _days(chunk, "current_due")
    elapsed = np.where(has_future, (today - start).astype(np.int64), 0)
    period = np.where(has_future, (due - start).astype(np.int64), 0)
    s = settle(
        arrears_principal=_col(chunk, "arrears_principal_fen"),
        arrears_interest=_col(chunk, "arrears_interest_fen"),
        arrears_fee=_col(chunk, "arrears_fee_fen"),
        penalty=_col(chunk, "penalty_fen"),
        remaining_principal=_col(chunk, "future_principal_fen"),
        current_interest=np.nan_to_num(_col(chunk, "current_interest_fen", np.float64)).astype(np.int64),
        current_fee=np.nan_to_num(_col(chunk, "current_fee_fen", np.float64)).astype(np.int64),
        elapsed_days=elapsed,
        period_days=period,
        has_future=has_future,
        interest_rule=_col(chunk, "p_settle_rule", np.int8),
        fees_waived=_col(chunk, "p_fees_waived", np.bool_),
        fee_rate_units=_col(chunk, "p_settle_fee_units"),
        flat_fee=_col(chunk, "p_settle_flat_fen"),
        half_even=_col(chunk, "p_half_even", np.bool_),
        waive_penalties=np.full(n, option.waive_penalties),
        discount_rate_units=np.full(n, int(rate_units(option.discount_rate, field="discount_rate"))),
        waive_settlement_fee=np.full(n, option.waive_settlement_fee),
    )
    repaid = s.remaining_principal + s.interest_charged + s.current_fee + s.settlement_fee - s.current_forgiven
    arrears_cost = _col(chunk, "arrears_interest_fen") + _col(chunk, "arrears_fee_fen")
    nominal, effective = settlement_apr(s.remaining_principal, repaid, s.share_num, s.share_den)
    total = s.total
    credit = np.minimum(_col(chunk, "credit_balance_fen"), total)
    return {
        "method": chunk.get_column("method").to_numpy(),
        "term": np.ones(n, dtype=np.int64),
        "annual_rate": np.full(n, np.nan),
        "fee_rate": np.full(n, np.nan),
        "principal_fen": s.principal,
        "due_now_principal_fen": s.principal,
        "due_now_interest_fen": s.interest,
        "due_now_fee_fen": s.fee,
        "due_now_penalty_fen": s.penalty,
        "waived_fen": s.waived,
        "credit_applied_fen": credit,
        "pay_now_fen": total - credit,
        "schedule_total_fen": np.zeros(n, dtype=np.int64),
        "total_cost_fen": total,
        "forgiven_principal_fen": _col(chunk, "arrears_principal_fen") + s.remaining_principal - s.principal,
        "capitalized_fen": np.zeros(n, dtype=np.int64),
        "installment_fen": total,
        "first_due": np.full(n, today),
        "maturity": np.full(n, today),
        "apr_nominal": nominal,
        "apr_effective": effective,
        "interest_charged_fen": arrears_cost + s.interest_charged + s.current_fee,
        "interest_accrued_fen": arrears_cost + s.interest_accrued + s.fee_accrued,
        "settlement_fee_fen": s.settlement_fee,
        "amount_repaid_early_fen": s.remaining_principal,
        "ev_option": total.astype(np.float64),
    }


@dataclass(frozen=True, slots=True)
class _Terms:
    """A re-schedule's inputs for every loan of a chunk (and which loans it cannot be offered to)."""

    method: np.ndarray
    principal: np.ndarray
    term: np.ndarray
    annual_units: np.ndarray
    fee_units: np.ndarray
    grace: np.ndarray
    start: np.ndarray
    due_interest: np.ndarray
    due_fee: np.ndarray
    due_penalty: np.ndarray
    waived: np.ndarray
    forgiven: np.ndarray
    capitalized: np.ndarray
    annual_rate: np.ndarray
    fee_rate: np.ndarray
    problem: np.ndarray  # reason text, "" where it can be offered


def _loan_rates(chunk: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    method = chunk.get_column("method").to_numpy().astype(str)
    annual = np.nan_to_num(_col(chunk, "annual_rate", np.float64))
    fee = np.nan_to_num(_col(chunk, "fee_rate", np.float64))
    return method, annual, fee


def _reschedule_terms(chunk: pl.DataFrame, option: OptionSpec, as_of: date) -> _Terms:
    n = chunk.height
    today = np.datetime64(as_of, "D")
    method_text, annual, fee = _loan_rates(chunk)
    codes = (
        chunk.get_column("method")
        .replace_strict({m.value: code for m, code in METHOD_CODES.items()}, return_dtype=pl.Int8)
        .to_numpy()
    )
    outstanding = _col(chunk, "outstanding_principal_fen")
    n_future = _col(chunk, "n_future")
    penalty = _col(chunk, "penalty_fen")
    arrears_interest = _col(chunk, "arrears_interest_fen")
    arrears_fee = _col(chunk, "arrears_fee_fen")
    half_even = _col(chunk, "p_half_even", np.bool_)
    problem = np.full(n, "", dtype=object)
    zeros = np.zeros(n, dtype=np.int64)
    flat = codes == METHOD_CODES[Method.FLAT_FEE]
    annual_rate = np.where(flat, np.nan, annual)
    fee_rate = np.where(flat, fee, np.nan)
    if isinstance(option, ExtensionOption):
        principal = outstanding
        term = n_future + option.extra_months
        start = np.where(n_future > 0, _days(chunk, "period_start"), today)
        problem[principal <= 0] = "no principal left to extend"
        maturity = _days(chunk, "maturity")
        problem[(principal > 0) & (maturity <= today)] = (
            "matured: an extension is applied for before maturity (Civil Code Art. 678)"
        )
        return _Terms(
            codes, principal, term, _rate_units(annual, ~flat), _rate_units(fee, flat), zeros, start,
            arrears_interest, arrears_fee, penalty, zeros, zeros, zeros, annual_rate, fee_rate, problem,
        )  # fmt: skip
    assert not isinstance(option, EarlySettlementOption)
    waive = option.waive_penalties
    capitalize = option.capitalize_overdue
    if isinstance(option, HardshipHolidayOption):
        haircut_units = 0
        term = n_future + option.months
        grace = np.full(n, option.months, dtype=np.int64)
        problem[n_future == 0] = "no installment left to defer"
        new_codes, annual_units, fee_units = codes, _rate_units(annual, ~flat), _rate_units(fee, flat)
    else:
        assert isinstance(option, RestructuringOption)
        haircut_units = int(rate_units(option.haircut, field="haircut"))
        term = np.full(n, option.term_months, dtype=np.int64)
        grace = np.full(n, option.grace_months, dtype=np.int64)
        new_codes = np.empty(n, dtype=np.int8)
        annual_units = np.zeros(n, dtype=np.int64)
        fee_units = np.zeros(n, dtype=np.int64)
        annual_rate = np.full(n, np.nan)
        fee_rate = np.full(n, np.nan)
        for m in np.unique(method_text).tolist():
            rows = method_text == m
            price = restructured_price(option, Method(m), Decimal(1), Decimal(1))
            if price.problem is not None:
                problem[rows] = price.problem
                new_codes[rows] = codes[rows]
                continue
            assert price.method is not None
            new_codes[rows] = METHOD_CODES[price.method]
            if price.method is Method.FLAT_FEE:
                given = option.fee_rate
                fee_units[rows] = int(rate_units(given)) if given is not None else _rate_units(fee, rows)[rows]
                fee_rate[rows] = float(given) if given is not None else fee[rows]
            else:
                given = option.annual_rate
                annual_units[rows] = int(rate_units(given)) if given is not None else _rate_units(annual, rows)[rows]
                annual_rate[rows] = float(given) if given is not None else annual[rows]
    forgiven = _round(haircut_units * outstanding, RATE_SCALE, half_even)
    captured = np.where(capitalize, arrears_interest + arrears_fee, 0)
    principal = outstanding - forgiven + captured
    problem[(principal <= 0) & (problem == "")] = "no principal left to reschedule"
    capitalize_grace = _col(chunk, "p_capitalize", np.bool_)
    new_flat = new_codes == METHOD_CODES[Method.FLAT_FEE]
    problem[(problem == "") & new_flat & capitalize_grace & (grace > 0)] = (
        "a flat-fee schedule cannot capitalise a grace period"
    )
    return _Terms(
        new_codes, principal, term, annual_units, fee_units, grace, np.full(n, today),
        np.where(capitalize, 0, arrears_interest), np.where(capitalize, 0, arrears_fee),
        np.where(waive, 0, penalty), np.where(waive, penalty, 0), forgiven, captured,
        annual_rate, fee_rate, problem,
    )  # fmt: skip


def _rate_units(rates: np.ndarray, where: np.ndarray) -> np.ndarray:
    units: np.ndarray = np.where(where, np.rint(rates * RATE_SCALE), 0).astype(np.int64)
    return units


def _round(num: np.ndarray, den: int, half_even: np.ndarray) -> np.ndarray:
    return round_div(num.astype(np.int64), den, half_even)


def _method_names(codes: np.ndarray) -> np.ndarray:
    """Method codes (:data:`METHOD_CODES`) back to their names, for a whole array at once."""
    names = np.empty(max(METHOD_CODES.values()) + 1, dtype=object)
    for method, code in METHOD_CODES.items():
        names[code] = method.value
    out: np.ndarray = names[codes]
    return out


# --- orchestration --------------------------------------------------------------------------------------------------


def price_offers(
    candidates: pl.DataFrame,
    plan: Plan,
    products: Sequence[Product],
    *,
    as_of: date,
    positions: PositionSource | None = None,
    chunk_size: int = 200_000,
) -> OfferBook:
    """Price every option of every loan's segment (see the module docstring); ``candidates`` is
    :func:`~runoff.plan.loan_state.loan_states` with the account columns :data:`CANDIDATE_COLUMNS`.

    Loans on products the vectorized path does not cover are quoted one by one through ``positions``
    (without it they are listed in ``skipped``).
    """
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise InvalidInput(f"`candidates`: column(s) {', '.join(missing)} missing", field="candidates")
    terms = pricing_terms(products)
    frame = candidates.join(terms, on="product_id", how="left")
    offers: list[pl.DataFrame] = []
    skipped: list[pl.DataFrame] = []
    for option in plan.options:
        segments = [s for s in plan.segments if option.id in s.options]
        if not segments:
            continue
        take_up = {s.id: float(plan.take_up(s, option.id)) for s in segments}
        chosen = frame.filter(pl.col("segment").is_in(list(take_up)))
        if chosen.height == 0:
            continue
        vector = chosen.filter(pl.col("p_vector"))
        for start in range(0, vector.height, chunk_size):
            chunk = vector.slice(start, chunk_size)
            priced, problems = _price_chunk(chunk, option, plan, as_of)
            if priced is not None:
                offers.append(priced)
            if problems is not None:
                skipped.append(problems)
        exact = chosen.filter(~pl.col("p_vector"))
        if exact.height:
            priced, problems = _price_exactly(exact, option, plan, as_of, positions)
            if priced is not None:
                offers.append(priced)
            skipped.append(problems)
    table = pl.concat(offers, how="vertical_relaxed") if offers else pl.DataFrame(schema=OFFER_SCHEMA)
    table = _finish(table, plan)
    gaps = (
        pl.concat(skipped, how="vertical_relaxed").select(list(SKIPPED_SCHEMA)).cast(SKIPPED_SCHEMA)  # type: ignore[arg-type]
        if skipped
        else pl.DataFrame(schema=SKIPPED_SCHEMA)
    )
    return OfferBook(offers=table, skipped=gaps)


def _price_chunk(
    chunk: pl.DataFrame, option: OptionSpec, plan: Plan, as_of: date
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    if isinstance(option, EarlySettlementOption):
        priced = _price_settlement(chunk, option, as_of)
        return _rows(chunk, priced, option, plan, as_of, exact=False), None
    terms = _reschedule_terms(chunk, option, as_of)
    ok = np.flatnonzero(terms.problem == "")
    bad = np.flatnonzero(terms.problem != "")
    problems = None
    if bad.size:
        problems = (
            chunk[bad]
            .select(pl.col("loan_id").cast(pl.String), "segment", pl.lit(option.id).alias("option_id"))
            .with_columns(pl.Series("reason", terms.problem[bad].astype(str)))
        )
    if ok.size == 0:
        return None, problems
    sub = chunk[ok]
    sched = reschedule(
        method=terms.method[ok],
        principal=terms.principal[ok],
        term=terms.term[ok],
        annual_rate_units=terms.annual_units[ok],
        fee_rate_units=terms.fee_units[ok],
        grace=terms.grace[ok],
        capitalize=_col(sub, "p_capitalize", np.bool_),
        half_even=_col(sub, "p_half_even", np.bool_),
        multiple_of_fen=_col(sub, "p_multiple_fen"),
        start=terms.start[ok],
        business_day_rules=sub.get_column("p_bdr").to_numpy().astype(str),
        holiday_countries=sub.get_column("p_country").to_numpy().astype(str),
    )
    totals = sched.total_fen
    assert sched.due_date is not None
    schedule_total = totals.sum(axis=1)
    n = terms.term[ok].astype(np.float64)
    guess = np.where(  # the contract rate; a flat fee f costs about 2nf/(n + 1) a period on the declining balance
        terms.annual_units[ok] > 0,
        terms.annual_units[ok] / (RATE_SCALE * 12),
        terms.fee_units[ok] / RATE_SCALE * 2.0 * n / (n + 1.0),
    ).astype(np.float64)
    principal = terms.principal[ok]
    irr = period_irr(principal, totals, guess)
    due_total = terms.due_interest[ok] + terms.due_fee[ok] + terms.due_penalty[ok]
    credit = np.minimum(_col(sub, "credit_balance_fen"), due_total)
    last = sched.installments - 1
    pd = np.clip(_col(sub, "pd", np.float64) * float(option.pd_multiplier), 0.0, 1.0)
    value = schedule_value(
        totals, sched.balance_after_fen, principal, sched.due_date, sched.mask, pd, as_of=as_of, plan=plan
    )
    priced = {
        "method": _method_names(terms.method[ok]),
        "term": terms.term[ok],
        "annual_rate": terms.annual_rate[ok],
        "fee_rate": terms.fee_rate[ok],
        "principal_fen": principal,
        "due_now_principal_fen": np.zeros(ok.size, dtype=np.int64),
        "due_now_interest_fen": terms.due_interest[ok],
        "due_now_fee_fen": terms.due_fee[ok],
        "due_now_penalty_fen": terms.due_penalty[ok],
        "waived_fen": terms.waived[ok],
        "credit_applied_fen": credit,
        "pay_now_fen": due_total - credit,
        "schedule_total_fen": schedule_total,
        "total_cost_fen": due_total + schedule_total,
        "forgiven_principal_fen": terms.forgiven[ok],
        "capitalized_fen": terms.capitalized[ok],
        "installment_fen": totals.max(axis=1),
        "first_due": sched.due_date[:, 0],
        "maturity": sched.due_date[np.arange(ok.size), last],
        "apr_nominal": irr * 12,
        "apr_effective": np.power(1.0 + irr, 12) - 1.0,
        "interest_charged_fen": np.zeros(ok.size, dtype=np.int64),
        "interest_accrued_fen": np.zeros(ok.size, dtype=np.int64),
        "settlement_fee_fen": np.zeros(ok.size, dtype=np.int64),
        "amount_repaid_early_fen": np.zeros(ok.size, dtype=np.int64),
        "ev_option": due_total + value,
    }
    return _rows(sub, priced, option, plan, as_of, exact=False), problems


def _rows(
    chunk: pl.DataFrame, priced: Mapping[str, Any], option: OptionSpec, plan: Plan, as_of: date, *, exact: bool
) -> pl.DataFrame:
    """The priced columns beside the loan's identity, state and account columns."""
    segment_take_up = {s.id: float(plan.take_up(s, option.id)) for s in plan.segments if option.id in s.options}
    base = chunk.select(
        pl.col("loan_id").cast(pl.String),
        pl.col("account_id").cast(pl.String),
        pl.col("customer_id").cast(pl.String),
        "segment",
        pl.col("region").fill_null(plan.region),
        "product_id",
        pl.col("start_date").alias("formation_date"),
        "current_remaining_fen",
        pl.col("n_future").alias("remaining_months"),
        (pl.col("future_interest_fen") + pl.col("future_fee_fen")).alias("interest_to_agreed_end_fen"),
        pl.col("maturity").alias("original_maturity"),
        "pd",
        "ev_original",
        "income_fen",
        "account_payment_fen",
        "next_payment_fen",
    )
    columns = []
    for name, values in priced.items():
        dtype = OFFER_SCHEMA[name]
        if dtype == pl.Date():
            columns.append(pl.Series(name, np.asarray(values, dtype="datetime64[D]")).cast(pl.Date))
        elif name == "method":
            columns.append(pl.Series(name, np.asarray(values, dtype=object), dtype=pl.String))
        else:
            columns.append(pl.Series(name, values).cast(dtype))
    return base.with_columns(columns).with_columns(
        pl.lit(plan.id).alias("plan_id"),
        pl.lit(option.id).alias("option_id"),
        pl.lit(option.option_kind.value).alias("option"),
        pl.lit(as_of).alias("offered_on"),
        pl.col("segment").replace_strict(segment_take_up, return_dtype=pl.Float64).alias("take_up"),
        pl.lit(exact).alias("exact"),
    )


def _price_exactly(
    rows: pl.DataFrame, option: OptionSpec, plan: Plan, as_of: date, positions: PositionSource | None
) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """Loans outside the vectorized path: one Decimal quote each."""
    keys = rows.get_column("loan_id").to_list()
    found = positions(keys) if positions is not None else {}
    problems: list[dict[str, Any]] = []
    good: list[int] = []
    priced: dict[str, list[Any]] = {}
    for k, key in enumerate(keys):
        position = found.get(key)
        segment = rows.get_column("segment")[k]
        if position is None:
            problems.append({"loan_id": str(key), "segment": segment, "option_id": option.id,
                             "reason": "needs the exact quote and no position was given"})  # fmt: skip
            continue
        try:
            quote = quote_option(position, option, as_of=as_of)
        except RunoffError as exc:
            problems.append({"loan_id": str(key), "segment": segment, "option_id": option.id, "reason": exc.message})
            continue
        row = quote_columns(quote, position, option)
        pd = float(rows.get_column("pd")[k] or 0.0) * float(option.pd_multiplier)
        row["ev_option"] = quote_value(quote, min(pd, 1.0), as_of=as_of, plan=plan)
        for name, value in row.items():
            priced.setdefault(name, []).append(value)
        good.append(k)
    skipped = pl.DataFrame(problems, schema=SKIPPED_SCHEMA, orient="row")
    if not good:
        return None, skipped
    arrays = {name: np.asarray(values) for name, values in priced.items()}
    return _rows(rows[good], arrays, option, plan, as_of, exact=True), skipped


def _finish(table: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """Savings, value to the lender, affordability, ids; the columns of :data:`OFFER_SCHEMA` in order."""
    a = plan.assumptions
    if table.height == 0:
        return pl.DataFrame(schema=OFFER_SCHEMA)
    settling = pl.col("option") == "early-settlement"
    income = pl.col("income_fen").cast(pl.Float64)
    after = pl.col("account_payment_fen") - pl.col("next_payment_fen") + pl.col("installment_fen")
    ratio = (
        pl.when(income > 0)
        .then(pl.when(settling).then(pl.col("pay_now_fen") / income).otherwise(after / income))
        .otherwise(None)
    )
    limit = pl.when(settling).then(float(a.max_settlement_to_income)).otherwise(float(a.max_payment_to_income))
    out = table.with_columns(
        pl.format("{}:{}:{}", pl.col("plan_id"), pl.col("loan_id"), pl.col("option_id")).alias("offer_id"),
        (pl.col("current_remaining_fen") - pl.col("total_cost_fen")).alias("saving_fen"),
        (pl.col("ev_option") - pl.col("ev_original")).alias("ev_gain"),
        ratio.alias("payment_to_income_after"),
        (ratio <= limit).alias("affordable"),
    ).with_columns((pl.col("take_up") * pl.col("ev_gain")).alias("expected_value"))
    out = out.with_columns(
        pl.col(c).fill_nan(None) for c in ("apr_nominal", "apr_effective", "annual_rate", "fee_rate")
    )
    return out.select([pl.col(name).cast(dtype) for name, dtype in OFFER_SCHEMA.items()])


def plan_over_loans(
    plan: Plan,
    states: pl.DataFrame,
    rows: pl.DataFrame,
    customers: pl.DataFrame | None,
    products: Sequence[Product],
    *,
    as_of: date,
    scores: pl.DataFrame | None = None,
    pd_by_bucket: Mapping[str, float] | None = None,
    with_offers: bool = True,
    positions: PositionSource | None = None,
) -> tuple[BookFigures, OfferBook | None]:
    """A plan over a set of loans (one partition, or the ledger's): account features, segments and their
    figures, and (``with_offers``) every offer priced. ``rows`` are the installment rows ``states`` came from."""
    features = account_features(states, customers, plan=plan, scores=scores, pd_by_bucket=pd_by_bucket)
    placed = assign_segments(features, plan)
    unassigned = placed.features.filter(pl.col("segment").is_null())
    figures = BookFigures(
        summary=placed.summary,
        overlaps=placed.overlaps,
        unassigned=placed.unassigned,
        in_several=placed.in_several,
        unassigned_balance_fen=int(unassigned.get_column("balance_fen").sum() or 0),
        regions=frozenset(r for r in features.get_column("region").unique().to_list() if r),
        last_maturity=states.get_column("maturity").max() if states.height else None,  # type: ignore[arg-type]
    )
    if not with_offers:
        return figures, None
    with_pd = states.join(placed.features.select("account_id", "pd"), on="account_id", how="left")
    values = original_schedule_value(rows, with_pd, as_of=as_of, plan=plan)
    candidates = offer_candidates(states, placed.features, values)
    return figures, price_offers(candidates, plan, products, as_of=as_of, positions=positions)
