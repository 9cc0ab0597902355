"""The vectorized schedule path agrees with the Decimal engine to the cent, on every loan and every field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runoff.calendar import BusinessDayRule, Frequency
from runoff.errors import ScheduleInvalid
from runoff.money import RoundingMode, to_minor
from runoff.servicing.product import GraceKind, Method, Product, parse_product
from runoff.servicing.schedule import build_schedule
from runoff.servicing.vectorized import (
    MAX_PRINCIPAL_FEN,
    METHOD_CODES,
    ScheduleArrays,
    build_schedules,
    due_dates,
    rate_units,
    schedules_for_products,
)

START = date(2024, 1, 31)
RATES = ["0", "0.06", "0.0735", "0.12", "0.15", "0.18", "0.2399", "0.24", "0.36", "1"]
FEES = ["0", "0.005", "0.006", "0.0075", "0.0133"]


def decimal_rows(product: Product, principal_fen: int, term: int, start: date = START) -> dict[str, Any]:
    """The Decimal engine's schedule of one loan as fen lists, the reference for every comparison."""
    schedule = build_schedule(product, principal=Decimal(principal_fen) / 100, term=term, start_date=start)
    rows = schedule.installments
    return {
        "principal_fen": [to_minor(i.principal) for i in rows],
        "interest_fen": [to_minor(i.interest) for i in rows],
        "fee_fen": [to_minor(i.fee) for i in rows],
        "balance_after_fen": [to_minor(i.balance_after) for i in rows],
        "capitalized_fen": [to_minor(i.capitalized) for i in rows],
        "due_date": [i.due_date for i in rows],
    }


def vector_rows(arrays: ScheduleArrays, i: int) -> dict[str, Any]:
    n = int(arrays.installments[i])
    rows: dict[str, Any] = {
        field: getattr(arrays, field)[i, :n].tolist()
        for field in ("principal_fen", "interest_fen", "fee_fen", "balance_after_fen", "capitalized_fen")
    }
    assert arrays.due_date is not None
    rows["due_date"] = arrays.due_date[i, :n].astype(object).tolist()
    return rows


def assert_book_matches(catalogue: list[Product], index: Any, principal: Any, term: Any, starts: Any) -> None:
    arrays = schedules_for_products(
        catalogue, product_index=index, principal_fen=principal, term=term, start_date=starts
    )
    mismatches = []
    for i in range(len(principal)):
        start = starts[i].astype(object)
        expected = decimal_rows(catalogue[index[i]], int(principal[i]), int(term[i]), start)
        got = vector_rows(arrays, i)
        if got != expected:
            mismatches.append((i, catalogue[index[i]].id, int(principal[i]), int(term[i]), start, got, expected))
    assert not mismatches, f"{len(mismatches)} loans differ; first: {mismatches[0]}"
    width = arrays.n_periods
    padding = ~arrays.mask
    assert width == int(np.max(term))
    assert not arrays.principal_fen[padding].any() and not arrays.interest_fen[padding].any()
    assert arrays.due_date is not None and np.isnat(arrays.due_date[padding]).all()


def random_product(rng: np.random.Generator, number: int, **fixed: Any) -> Product:
    method = fixed.pop("method", rng.choice([m.value for m in Method]))
    data: dict[str, Any] = {
        "id": f"p{number}",
        "method": method,
        "terms": [1, 2, 3, 6, 12, 24, 36],
        "rounding": {"mode": rng.choice(["half-up", "half-even"])},
    }
    if method == "flat-fee":
        data["fee_rate"] = rng.choice([*FEES, f"{rng.integers(1, 200_000) / 1e7:.7f}"])
    else:
        data["annual_rate"] = rng.choice(
            [*RATES, f"{rng.integers(1, 4_000) / 1e4:.4f}", f"0.{rng.integers(1, 10**8):08d}"]
        )
    data.update(fixed)
    if data.get("grace_periods") or data.get("down_payment"):
        data["terms"] = [3, 6, 12, 24, 36]
    return parse_product(data)


def random_loans(
    rng: np.random.Generator, catalogue: list[Product], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    index = rng.integers(0, len(catalogue), n)
    term = np.asarray([rng.choice(catalogue[i].terms) for i in index], dtype=np.int64)
    # A third uniform, a third round hundreds of yuan, a third ≡ 1 yuan (mod 2 yuan): interest ties at 6 % etc.
    kind = rng.integers(0, 3, n)
    principal = np.select(
        [kind == 0, kind == 1],
        [rng.integers(100, 5_000_000, n), rng.integers(1, 500, n) * 10_000],
        rng.integers(0, 25_000, n) * 200 + 100,
    ).astype(np.int64)
    starts = np.datetime64("2023-12-01") + rng.integers(0, 800, n).astype("timedelta64[D]")
    return index, principal, term, starts


BOOKS = {
    "plain": {},
    "whole-yuan": {"rounding": {"multiple_of": "1"}},
    "ten-yuan-half-even": {"rounding": {"multiple_of": "10", "mode": "half-even"}},
    "interest-only-grace": {"grace_periods": 2},
    "capitalizing-grace": {"grace_periods": 1, "grace_kind": "capitalize"},
    "down-payment": {"down_payment": True},
    "down-payment-whole-yuan": {"down_payment": True, "rounding": {"multiple_of": "1"}},
    "biweekly": {"frequency": "biweekly"},
    "weekly-half-even": {"frequency": "weekly", "rounding": {"mode": "half-even"}},
    "following-business-day": {"business_day_rule": "following"},
}


def catalogue_of(rng: np.random.Generator, shapes: list[dict[str, Any]], first_number: int = 0) -> list[Product]:
    """One random product per shape (a dict of fixed product fields, as in :data:`BOOKS`)."""
    catalogue = []
    for number, fixed in enumerate(shapes, start=first_number):
        extra = {k: (dict(v) if isinstance(v, dict) else v) for k, v in fixed.items()}
        if "rounding" in extra:
            extra["rounding"].setdefault("mode", rng.choice(["half-up", "half-even"]))
        if extra.get("grace_kind") == "capitalize":  # flat-fee products cannot capitalize
            extra["method"] = rng.choice([m.value for m in Method if m is not Method.FLAT_FEE])
        catalogue.append(random_product(rng, number, **extra))
    return catalogue


@pytest.mark.parametrize(("seed", "fixed"), list(enumerate(BOOKS.values())), ids=BOOKS.keys())
def test_random_book_equals_decimal_engine_on_every_loan(seed: int, fixed: dict[str, Any]) -> None:
    rng = np.random.default_rng(20240131 + seed)
    catalogue = catalogue_of(rng, [fixed] * 24)
    index, principal, term, starts = random_loans(rng, catalogue, 400)
    assert_book_matches(catalogue, index, principal, term, starts)


def test_mixed_book_of_every_product_shape_equals_decimal_engine() -> None:
    # Rounding, multiples, grace kinds and down payments differ per loan within one pass; frequencies and
    # business-day rules are separate passes merged back in the caller's order.
    rng = np.random.default_rng(7)
    catalogue = catalogue_of(rng, list(BOOKS.values()) * 3)
    index, principal, term, starts = random_loans(rng, catalogue, 1_000)
    assert_book_matches(catalogue, index, principal, term, starts)


@st.composite
def products_and_loans(draw: st.DrawFn) -> tuple[Product, int, int]:
    """Any period-basis product the vectorized path covers, with one loan on it."""
    method = draw(st.sampled_from(list(Method)))
    term = draw(st.integers(1, 48))
    extra: dict[str, Any] = {}
    shape = draw(st.sampled_from(["plain", "grace", "down-payment"]))
    if shape == "grace" and term > 1:
        extra["grace_periods"] = draw(st.integers(1, min(term - 1, 24)))
        kinds = ["interest-only"] if method is Method.FLAT_FEE else ["interest-only", "capitalize"]
        extra["grace_kind"] = draw(st.sampled_from(kinds))
    elif shape == "down-payment" and term > 1:
        extra["down_payment"] = True
    if method is Method.FLAT_FEE:
        extra["fee_rate"] = Decimal(draw(st.integers(0, 10**7))) / 10**8
    else:
        extra["annual_rate"] = Decimal(draw(st.integers(0, 10**8))) / 10**8
    product = parse_product(
        {
            "id": "h",
            "method": method,
            "terms": [term],
            "frequency": draw(st.sampled_from(list(Frequency))),
            "rounding": {
                "mode": draw(st.sampled_from(list(RoundingMode))),
                "multiple_of": draw(st.sampled_from([None, "0.05", "1", "100"])),
            },
            **extra,
        }
    )
    return product, draw(st.integers(1, 200_000_000)), term


@settings(max_examples=300, deadline=None)
@given(case=products_and_loans())
def test_any_single_loan_equals_decimal_engine(case: tuple[Product, int, int]) -> None:
    product, principal_fen, term = case
    arrays = schedules_for_products(product, principal_fen=[principal_fen], term=[term], start_date=START)
    assert vector_rows(arrays, 0) == decimal_rows(product, principal_fen, term)


def test_principal_repaid_equals_principal_lent_on_a_large_book() -> None:
    rng = np.random.default_rng(11)
    n = 200_000
    codes = rng.integers(0, 4, n)
    flat = codes == METHOD_CODES[Method.FLAT_FEE]
    principal = rng.integers(1, 5_000_000, n)
    arrays = build_schedules(
        codes,
        principal_fen=principal,
        term=rng.choice([3, 6, 12, 24], n),
        annual_rate_units=np.where(flat, 0, rng.integers(0, 36_000_000, n)),
        fee_rate_units=np.where(flat, rng.integers(0, 2_000_000, n), 0),
        grace_periods=rng.integers(0, 3, n),
        multiple_of_fen=100,
    )
    assert (arrays.principal_fen.sum(axis=1) == principal).all()
    assert (arrays.balance_after_fen >= 0).all()
    assert (arrays.balance_after_fen[np.arange(n), arrays.installments - 1] == 0).all()


def test_capitalized_interest_is_repaid_as_principal() -> None:
    arrays = build_schedules(
        Method.EQUAL_PRINCIPAL,
        principal_fen=[1_000_000],
        term=6,
        annual_rate_units=rate_units(Decimal("0.12")),
        grace_periods=2,
        grace_kind=GraceKind.CAPITALIZE,
    )
    # 10,000.00 grows by 100.00 then 101.00 of capitalized interest before amortizing 10,201.00 over 4.
    assert arrays.capitalized_fen[0].tolist() == [10_000, 10_100, 0, 0, 0, 0]
    assert arrays.principal_fen[0].tolist() == [0, 0, 255_025, 255_025, 255_025, 255_025]
    assert arrays.principal_fen.sum() == 1_000_000 + arrays.capitalized_fen.sum()


TIES = {
    # 1,001.00 at 6 % a year: interest 5.005 a month.
    "interest-tie-half-up": (Method.INTEREST_ONLY, 100_100, "0.06", 3, RoundingMode.HALF_UP,
                             [0, 0, 100_100], [501, 501, 501]),
    "interest-tie-half-even": (Method.INTEREST_ONLY, 100_100, "0.06", 3, RoundingMode.HALF_EVEN,
                               [0, 0, 100_100], [500, 500, 500]),
    # 100.50 at 1 % a month over 2: the exact level payment is 100.50 × 1.0201 / 2.01 = 51.005, interest
    # 1.005 then 0.505: three ties, decided by the exact rationals, not by the float.
    "payment-tie-half-up": (Method.EQUAL_INSTALLMENT, 10_050, "0.12", 2, RoundingMode.HALF_UP,
                            [5_000, 5_050], [101, 51]),
    "payment-tie-half-even": (Method.EQUAL_INSTALLMENT, 10_050, "0.12", 2, RoundingMode.HALF_EVEN,
                              [5_000, 5_050], [100, 50]),
}  # fmt: skip


@pytest.mark.parametrize(("method", "principal", "rate", "term", "mode", "principal_due", "interest_due"),
                         TIES.values(), ids=TIES.keys())  # fmt: skip
def test_half_cent_ties_follow_the_products_rounding_mode(
    method: Method, principal: int, rate: str, term: int, mode: RoundingMode, principal_due: list[int],
    interest_due: list[int],
) -> None:  # fmt: skip
    arrays = build_schedules(
        method, principal_fen=[principal], term=term, annual_rate_units=rate_units(Decimal(rate)), rounding=mode
    )
    assert arrays.principal_fen[0].tolist() == principal_due
    assert arrays.interest_fen[0].tolist() == interest_due
    product = parse_product(
        {"id": "tie", "method": method, "annual_rate": rate, "terms": [term], "rounding": {"mode": mode}}
    )
    assert vector_rows(
        schedules_for_products(product, principal_fen=[principal], term=[term], start_date=START), 0
    ) == (decimal_rows(product, principal, term))


def test_payment_tie_the_float_misses_is_decided_by_the_exact_route() -> None:
    # 88,331,718.75 at 12.0448 % over 2 months: the exact level payment is 44,831,927.405 (a tie); float64
    # computes 44,831,927.40499999..., so without the exact route half-up would give .40 instead of .41.
    kwargs: dict[str, Any] = {"principal_fen": [8_833_171_875], "term": 2, "annual_rate_units": 12_044_800}
    exact = build_schedules(Method.EQUAL_INSTALLMENT, **kwargs)
    float_only = build_schedules(Method.EQUAL_INSTALLMENT, payment_tolerance=0.0, **kwargs)
    assert exact.total_fen[0, 0] == 4_483_192_741
    assert float_only.total_fen[0, 0] == 4_483_192_740
    product = parse_product({"id": "tie", "method": "equal-installment", "annual_rate": "0.120448", "terms": [2]})
    assert (
        decimal_rows(product, 8_833_171_875, 2)["principal_fen"][0]
        + decimal_rows(product, 8_833_171_875, 2)["interest_fen"][0]
        == 4_483_192_741
    )


def test_forcing_every_payment_through_the_exact_route_changes_nothing() -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    kwargs: dict[str, Any] = {
        "principal_fen": rng.integers(100, 10_000_000, n),
        "term": rng.choice([3, 6, 12, 24, 360], n),
        "annual_rate_units": rng.integers(0, 10**8, n),
        "multiple_of_fen": None,
    }
    for mode in RoundingMode:
        fast = build_schedules(Method.EQUAL_INSTALLMENT, rounding=mode, **kwargs)
        exact = build_schedules(Method.EQUAL_INSTALLMENT, rounding=mode, payment_tolerance=1.0, **kwargs)
        assert np.array_equal(fast.principal_fen, exact.principal_fen)


LARGE = {
    "10-million-yuan-at-24-percent-360": (1_000_000_000, "0.24", 360),
    "10-million-yuan-at-100-percent-12": (1_000_000_000, "1", 12),
    "largest-principal-at-100-percent": (MAX_PRINCIPAL_FEN, "1", 24),
}


@pytest.mark.parametrize(("principal", "rate", "term"), LARGE.values(), ids=LARGE.keys())
@pytest.mark.parametrize("method", list(Method), ids=[m.value for m in Method])
def test_large_principal_does_not_overflow(method: Method, principal: int, rate: str, term: int) -> None:
    price = {"fee_rate": "0.1"} if method is Method.FLAT_FEE else {"annual_rate": rate}
    product = parse_product({"id": "big", "method": method, "terms": [term], **price})
    arrays = schedules_for_products(product, principal_fen=[principal], term=[term], start_date=START)
    assert vector_rows(arrays, 0) == decimal_rows(product, principal, term)


def test_principal_above_the_int64_bound_is_refused() -> None:
    with pytest.raises(ScheduleInvalid, match="principal_fen"):
        build_schedules(Method.EQUAL_INSTALLMENT, principal_fen=[MAX_PRINCIPAL_FEN + 1], term=12)


DUE = {
    "monthly-month-end": (Frequency.MONTHLY, False, ["2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]),
    "monthly-down-payment": (Frequency.MONTHLY, True, ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]),
    "biweekly": (Frequency.BIWEEKLY, False, ["2024-02-14", "2024-02-28", "2024-03-13", "2024-03-27"]),
    "weekly": (Frequency.WEEKLY, False, ["2024-02-07", "2024-02-14", "2024-02-21", "2024-02-28"]),
}


@pytest.mark.parametrize(("frequency", "down", "expected"), DUE.values(), ids=DUE.keys())
def test_due_dates_keep_the_drawing_day_with_month_end_clamp(
    frequency: Frequency, down: bool, expected: list[str]
) -> None:
    dates = due_dates(START, [4, 2], frequency=frequency, down_payment=down)
    assert dates[0].astype(str).tolist() == expected
    assert np.isnat(dates[1, 2:]).all()


def test_following_rule_moves_due_dates_past_the_national_day_holiday() -> None:
    dates = due_dates(date(2024, 9, 1), [1], business_day_rule=BusinessDayRule.FOLLOWING)
    assert dates[0].astype(str).tolist() == ["2024-10-08"]  # 1 Oct 2024: 国庆节, off until 7 Oct


BAD = {
    "daily-accrual": ({"interest_basis": "daily"}, "interest_basis"),
    "zero-term": ({"term": 0}, "term"),
    "negative-principal": ({"principal_fen": [-5]}, "principal_fen"),
    "rate-above-one": ({"annual_rate_units": 10**8 + 1}, "annual_rate_units"),
    "fee-on-an-interest-loan": ({"fee_rate_units": 600_000}, "fee_rate_units"),
    "grace-as-long-as-term": ({"grace_periods": 12}, "grace_periods"),
    "down-payment-with-grace": ({"grace_periods": 1, "down_payment": True}, "grace_periods"),
    "down-payment-over-one-period": ({"term": 1, "down_payment": True}, "term"),
    "lengths-differ": ({"term": [12, 12, 12]}, "differ in length"),
    "unknown-method-code": ({"method": np.array([7])}, "method"),
    "negative-multiple": ({"multiple_of_fen": -100}, "multiple_of_fen"),
}


@pytest.mark.parametrize(("change", "match"), BAD.values(), ids=BAD.keys())
def test_bad_input_is_refused_with_the_field_named(change: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {"method": Method.EQUAL_INSTALLMENT, "principal_fen": [100_000, 200_000], "term": 12}
    kwargs.update(change)
    method = kwargs.pop("method")
    with pytest.raises(ScheduleInvalid, match=match):
        build_schedules(method, **kwargs)


def test_rate_units_refuses_more_than_eight_decimals() -> None:
    assert rate_units(["0.06", Decimal("0.18"), 0.2399]).tolist() == [6_000_000, 18_000_000, 23_990_000]
    with pytest.raises(ScheduleInvalid, match="annual_rate"):
        rate_units(Decimal("0.123456789"))


def test_daily_accrual_product_is_refused() -> None:
    product = parse_product({"id": "d", "method": "equal-principal", "annual_rate": "0.18", "terms": [6],
                             "interest_basis": "daily"})  # fmt: skip
    with pytest.raises(ScheduleInvalid, match="interest_basis"):
        schedules_for_products(product, principal_fen=[100_000], term=[6])


def test_capitalizing_flat_fee_is_refused() -> None:
    with pytest.raises(ScheduleInvalid, match="grace_kind"):
        build_schedules(Method.FLAT_FEE, principal_fen=[100_000], term=6, fee_rate_units=600_000, grace_periods=1,
                        grace_kind=GraceKind.CAPITALIZE)  # fmt: skip


def test_result_arrays_are_read_only() -> None:
    arrays = build_schedules(Method.EQUAL_INSTALLMENT, principal_fen=[100_000], term=3, annual_rate_units=12_000_000)
    with pytest.raises(ValueError, match="read-only"):
        arrays.principal_fen[0, 0] = 1


def test_rounding_down_payment_and_grace_can_differ_per_loan_in_one_call() -> None:
    arrays = build_schedules(
        np.array([METHOD_CODES[Method.INTEREST_ONLY]] * 2 + [METHOD_CODES[Method.EQUAL_PRINCIPAL]] * 2),
        principal_fen=[100_100, 100_100, 100_000, 100_000],
        term=[3, 3, 4, 4],
        annual_rate_units=6_000_000,
        rounding=[RoundingMode.HALF_UP, RoundingMode.HALF_EVEN, "half-up", "half-up"],
        down_payment=np.array([False, False, True, False]),
        grace_periods=[0, 0, 0, 1],
        grace_kind=[GraceKind.INTEREST_ONLY] * 3 + [GraceKind.CAPITALIZE],
        multiple_of_fen=[0, 0, 100, 0],
    )
    assert arrays.interest_fen[:2, 0].tolist() == [501, 500]  # 5.005: half-up, half-even
    # Down payment m(1000/4) = 250, then m(750/3 + I) − I: m(253.75) − 3.75, m(252.50) − 2.50, the rest.
    assert arrays.principal_fen[2].tolist() == [25_000, 25_025, 25_050, 24_925]
    assert arrays.capitalized_fen[3].tolist() == [500, 0, 0, 0]  # 1,000.00 × 0.5 % capitalized
    assert arrays.principal_fen[3].tolist() == [0, 33_500, 33_500, 33_500]
