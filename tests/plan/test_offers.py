"""Offers: the vectorized pricer agrees with the Decimal quotes to the cent; APRs are the IRR of each offer's
own cash flows; an early settlement never charges interest beyond the settlement date where the rules forbid it."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import numpy as np
import numpy_financial as npf
import polars as pl
import pytest

from runoff.compliance.engine import check_offer
from runoff.compliance.facts import OfferFacts
from runoff.compliance.selection import RuleBook
from runoff.plan.checks import check_offers_part
from runoff.plan.loan_state import installment_rows, loan_states, position_of
from runoff.plan.offers import OfferBook, plan_over_loans
from runoff.plan.quoting import quote_columns, quote_option
from runoff.portfolio.catalogue import product_catalogue
from runoff.servicing.apr import apr_of_schedule
from runoff.servicing.position import LoanPosition, open_position
from runoff.servicing.product import parse_product
from runoff.servicing.quotes import remaining_payable
from runoff.servicing.schedule import build_schedule
from tests.plan.factories import book_positions, make_plan, small_book
from tests.plan.positions import PRODUCTS, random_positions

EVERY_OPTION = [
    {"id": "settle", "kind": "early-settlement"},
    {
        "id": "settle-discount",
        "kind": "early-settlement",
        "discount_rate": 0.05,
        "waive_penalties": True,
        "waive_settlement_fee": True,
    },
    {"id": "extend-6", "kind": "extension", "extra_months": 6},
    {"id": "restructure-same", "kind": "restructuring", "term_months": 18, "waive_penalties": True},
    {
        "id": "restructure-ei",
        "kind": "restructuring",
        "term_months": 24,
        "annual_rate": 0.0999,
        "haircut": 0.1,
        "capitalize_overdue": True,
    },
    {"id": "restructure-flat", "kind": "restructuring", "term_months": 9, "fee_rate": 0.004, "grace_months": 2},
    {"id": "holiday-3", "kind": "hardship-holiday", "months": 3, "capitalize_overdue": True},
]
AMOUNTS = (
    "principal_fen",
    "due_now_principal_fen",
    "due_now_interest_fen",
    "due_now_fee_fen",
    "due_now_penalty_fen",
    "waived_fen",
    "credit_applied_fen",
    "pay_now_fen",
    "total_cost_fen",
    "forgiven_principal_fen",
    "capitalized_fen",
    "installment_fen",
    "interest_charged_fen",
    "interest_accrued_fen",
    "settlement_fee_fen",
    "amount_repaid_early_fen",
)
AS_OF = date(2025, 6, 17)


def everything_plan():
    return make_plan(
        segments=[{"id": "all", "options": [o["id"] for o in EVERY_OPTION]}],
        options=EVERY_OPTION,
        **{"assumptions.pd_by_bucket": {"current": 0.02, "M1": 0.2, "M2": 0.5, "M3": 0.7, "M4+": 0.9}},
    )


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _close(a: float | None, b: float | None, tol: float = 1e-9) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    assert a is not None and b is not None
    return abs(a - b) <= tol * max(1.0, abs(a))


def assert_offers_match_quotes(book: OfferBook, positions: dict[object, LoanPosition], plan, as_of: date) -> int:
    """Every priced offer equals its Decimal quote to the cent (and its APR to 1e-9); returns how many."""
    by_key = {str(k): v for k, v in positions.items()}
    checked = 0
    for row in book.offers.to_dicts():
        position = by_key[row["loan_id"]]
        option = plan.option(row["option_id"])
        expected = quote_columns(quote_option(position, option, as_of=as_of), position, option)
        for name in (*AMOUNTS, "term", "method", "first_due", "maturity"):
            assert row[name] == expected[name], (row["offer_id"], name, row[name], expected[name])
        assert _close(row["apr_nominal"], expected["apr_nominal"]), (row["offer_id"], row["apr_nominal"])
        assert _close(row["apr_effective"], expected["apr_effective"]), row["offer_id"]
        assert row["current_remaining_fen"] == int(remaining_payable(position, as_of) * 100)
        assert row["saving_fen"] == row["current_remaining_fen"] - row["total_cost_fen"]
        checked += 1
    return checked


def _book_sample(n_loans: int = 150):
    as_of, loans, rows = book_positions()
    overdue = loans.filter(pl.col("dpd") > 0).get_column("loan_id").to_list()
    rest = loans.filter(pl.col("dpd") == 0).get_column("loan_id").sample(n_loans, seed=3).to_list()
    keep = set(overdue[:100] + rest)
    return as_of, loans.filter(pl.col("loan_id").is_in(keep)), rows.filter(pl.col("loan_id").is_in(keep))


def _priced_positions(seed: int, n: int, as_of: date = AS_OF):
    positions = random_positions(seed, n, as_of=as_of)
    loans, rows = installment_rows(positions, as_of=as_of)
    states = loan_states(loans, rows, PRODUCTS, as_of=as_of)
    plan = everything_plan()
    by_id = {p.loan_id: p for p in positions}
    _, book = plan_over_loans(
        plan, states, rows, None, PRODUCTS, as_of=as_of, positions=lambda keys: {k: by_id[k] for k in keys}
    )
    assert book is not None
    return plan, by_id, states, book


def test_the_bulk_pricer_agrees_with_the_decimal_quotes_to_the_cent_on_book_loans():
    as_of, loans, rows = _book_sample()
    products = product_catalogue()
    by_id = {p.id: p for p in products}
    plan = everything_plan()
    states = loan_states(loans, rows, products, as_of=as_of)
    _, book = plan_over_loans(plan, states, rows, small_book()["customers"], products, as_of=as_of)
    assert book is not None and book.offers.height > 1000
    assert not book.offers.get_column("exact").any()  # every book loan takes the vectorized path
    grouped = {k[0]: g.to_dicts() for k, g in rows.group_by("loan_id")}
    positions = {r["loan_id"]: position_of(r, grouped[r["loan_id"]], by_id[r["product_id"]]) for r in loans.to_dicts()}
    assert assert_offers_match_quotes(book, positions, plan, as_of) == book.offers.height
    assert set(book.offers.get_column("option_id").unique()) == {o["id"] for o in EVERY_OPTION}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_bulk_pricer_agrees_with_the_decimal_quotes_on_varied_ledger_positions(seed):
    """Half-even rounding to whole yuan, settlement fees, a flat fee charged for the whole current period,
    penalty caps and grace days, capitalising grace, a business-day rule, part payments, credit balances."""
    plan, by_id, _, book = _priced_positions(seed, 60)
    assert assert_offers_match_quotes(book, by_id, plan, AS_OF) == book.offers.height > 200
    assert all(book.skipped.get_column("reason").to_list())  # every pair not offered says why


def test_loan_states_match_the_decimal_positions():
    positions = random_positions(7, 40, as_of=AS_OF)
    loans, rows = installment_rows(positions, as_of=AS_OF)
    states = {r["loan_id"]: r for r in loan_states(loans, rows, PRODUCTS, as_of=AS_OF).to_dicts()}
    for p in positions:
        if p.is_settled:
            assert p.loan_id not in states  # nothing left to pay: no options
            continue
        s = states[p.loan_id]
        assert s["current_remaining_fen"] == int(remaining_payable(p, AS_OF) * 100)
        assert s["outstanding_principal_fen"] == int(p.outstanding_principal * 100)
        assert s["n_future"] == len(p.not_yet_due(AS_OF))


def test_every_reschedule_offers_apr_is_the_irr_of_its_own_cash_flows():
    as_of, loans, rows = _book_sample(120)
    products = product_catalogue()
    by_id = {p.id: p for p in products}
    plan = everything_plan()
    states = loan_states(loans, rows, products, as_of=as_of)
    _, book = plan_over_loans(plan, states, rows, None, products, as_of=as_of)
    assert book is not None
    grouped = {k[0]: g.to_dicts() for k, g in rows.group_by("loan_id")}
    loan_rows = {str(r["loan_id"]): r for r in loans.to_dicts()}
    reschedules = book.offers.filter(pl.col("option") != "early-settlement")
    assert reschedules.height > 500
    for row in reschedules.to_dicts():
        loan = loan_rows[row["loan_id"]]
        position = position_of(loan, grouped[loan["loan_id"]], by_id[loan["product_id"]])
        schedule = quote_option(position, plan.option(row["option_id"]), as_of=as_of).schedule
        flows = [-float(schedule.principal)] + [float(i.total) for i in schedule.installments]
        assert row["apr_nominal"] == pytest.approx(npf.irr(flows) * 12, rel=1e-9, abs=1e-12)
        assert row["apr_nominal"] == pytest.approx(float(apr_of_schedule(schedule).nominal), rel=1e-12, abs=1e-14)
        assert row["apr_effective"] == pytest.approx((1 + npf.irr(flows)) ** 12 - 1, rel=1e-9, abs=1e-12)


def _settlements(seed: int, n: int) -> tuple[object, OfferBook, pl.DataFrame]:
    plan, _, states, book = _priced_positions(seed, n)
    offers = book.offers.filter(pl.col("option_id") == "settle").join(
        states.select(
            pl.col("loan_id").cast(pl.String),
            "current_interest_fen",
            "current_fee_fen",
            "period_start",
            "current_due",
            (pl.col("arrears_interest_fen") + pl.col("arrears_fee_fen")).alias("arrears_cost_fen"),
        ),
        on="loan_id",
    )
    return plan, book, offers


def test_a_settlements_apr_is_the_rate_at_which_the_principal_prepaid_grows_into_what_is_repaid():
    _, _, offers = _settlements(11, 80)
    checked = 0
    for r in offers.filter(pl.col("apr_nominal").is_not_null() & (pl.col("amount_repaid_early_fen") > 0)).to_dicts():
        share = (AS_OF - r["period_start"]).days / (r["current_due"] - r["period_start"]).days
        repaid = (
            r["amount_repaid_early_fen"] + r["interest_charged_fen"] - r["arrears_cost_fen"] + r["settlement_fee_fen"]
        )
        assert r["amount_repaid_early_fen"] * (1 + r["apr_nominal"] / 12) ** share == pytest.approx(repaid, rel=1e-9)
        assert (1 + r["apr_nominal"] / 12) ** 12 - 1 == pytest.approx(r["apr_effective"], rel=1e-9)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("seed", [21, 22])
def test_a_settlement_never_charges_interest_beyond_the_settlement_date_where_the_rules_forbid_it(seed):
    """Products that settle to the day charge interest and flat fees only for the days borrowed; the one that
    charges its whole current period (flat-06) is caught by CN-PRC-02 (Civil Code Art. 677), which blocks."""
    plan, book, offers = _settlements(seed, 80)
    to_the_day = {
        p.id
        for p in PRODUCTS
        if p.early_settlement.interest.value == "accrued-to-date" and p.early_settlement.remaining_flat_fees_waived
    }
    beyond = set()
    for r in offers.to_dicts():
        if r["product_id"] in to_the_day:
            assert r["interest_charged_fen"] == r["interest_accrued_fen"]
            if r["period_start"] is not None:
                share = (AS_OF - r["period_start"]).days / (r["current_due"] - r["period_start"]).days
                current = r["interest_charged_fen"] - r["arrears_cost_fen"]
                assert current <= (r["current_interest_fen"] + r["current_fee_fen"]) * share + 1
        if r["interest_charged_fen"] > r["interest_accrued_fen"]:
            beyond.add(r["offer_id"])
    assert beyond
    assert set(offers.filter(pl.col("offer_id").is_in(list(beyond))).get_column("product_id")) == {"flat-06"}
    checks = check_offers_part(book.offers, book.skipped, plan, book=RuleBook(plan.lender))  # type: ignore[attr-defined]
    flagged = checks.findings.filter(pl.col("rule_id") == "CN-PRC-02")
    assert {o for o in flagged.get_column("object_id") if o.endswith(":settle")} == beyond
    assert {o.rsplit(":", 1)[0] for o in flagged.get_column("object_id")} == {o.rsplit(":", 1)[0] for o in beyond}
    assert set(flagged.get_column("severity")) == {"block"}


def test_interest_beyond_the_settlement_date_is_refused_unless_the_contract_allows_it():
    facts = {
        "offer_id": "o",
        "option": "early-settlement",
        "offered_on": AS_OF,
        "region": "CN",
        "apr_nominal": Decimal("0.1"),
        "settlement_date": AS_OF,
        "interest_charged": Decimal("12.00"),
        "interest_accrued_to_settlement": Decimal("5.10"),
    }
    lender = everything_plan().lender
    found = [f for f in check_offer(OfferFacts(**facts), lender) if f.rule_id == "CN-PRC-02"]
    assert found and found[0].blocks and "charges interest of 12.00, only 5.10 accrued" in found[0].message
    allowed = OfferFacts(**facts, contract_allows_interest_beyond_settlement=True)
    assert not [f for f in check_offer(allowed, lender) if f.rule_id == "CN-PRC-02"]


def test_loans_outside_the_vectorized_path_are_quoted_exactly_and_marked():
    daily = parse_product(
        {"id": "daily", "method": "equal-installment", "annual_rate": "0.18", "terms": [6], "interest_basis": "daily"},
        source="test",
    )
    as_of = date(2025, 3, 10)
    schedule = build_schedule(daily, principal=Decimal("3000.00"), term=6, start_date=date(2025, 1, 20))
    position = open_position("D1", daily, schedule)
    loans, rows = installment_rows([position], as_of=as_of)
    states = loan_states(loans, rows, [daily], as_of=as_of)
    plan = everything_plan()
    _, book = plan_over_loans(plan, states, rows, None, [daily], as_of=as_of, positions=lambda k: {"D1": position})
    assert book is not None and book.offers.get_column("exact").all()
    assert assert_offers_match_quotes(book, {"D1": position}, plan, as_of) == book.offers.height > 0
    _, without = plan_over_loans(plan, states, rows, None, [daily], as_of=as_of)
    assert without is not None and without.offers.height == 0
    assert set(without.skipped.get_column("reason")) == {"needs the exact quote and no position was given"}


def test_expected_value_weighs_the_gain_by_the_take_up():
    as_of, loans, rows = _book_sample(60)
    products = product_catalogue()
    plan = make_plan(
        segments=[{"id": "all", "options": ["settle", "extend-3"]}],
        **{"options.0.take_up": 0.25, "options.1.take_up": 0.1},
    )
    states = loan_states(loans, rows, products, as_of=as_of)
    _, book = plan_over_loans(plan, states, rows, None, products, as_of=as_of)
    assert book is not None
    offers = book.offers
    assert np.allclose(offers["ev_gain"], offers["ev_option"] - offers["ev_original"])
    take = offers.get_column("option_id").replace_strict({"settle": 0.25, "extend-3": 0.1}, return_dtype=pl.Float64)
    assert np.allclose(offers["expected_value"], take * offers["ev_gain"])
    settled = offers.filter(pl.col("option_id") == "settle")
    assert (settled["ev_option"] == settled["total_cost_fen"].cast(pl.Float64)).all()


def test_affordability_compares_the_new_payments_with_income():
    as_of, loans, rows = _book_sample(80)
    products = product_catalogue()
    plan = make_plan(segments=[{"id": "all", "options": ["settle", "extend-3"]}])
    states = loan_states(loans, rows, products, as_of=as_of)
    _, book = plan_over_loans(plan, states, rows, small_book()["customers"], products, as_of=as_of)
    assert book is not None
    offers = book.offers.filter(pl.col("payment_to_income_after").is_not_null())
    assert offers.height > 100
    limit = pl.when(pl.col("option") == "early-settlement").then(1.0).otherwise(0.5)
    assert (offers["affordable"] == offers.select(pl.col("payment_to_income_after") <= limit).to_series()).all()
