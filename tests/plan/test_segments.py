"""Segments: account features from the loans, first match wins, every account in exactly one segment."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from runoff.plan.features import BUCKET_VALUES
from runoff.plan.segments import (
    account_features,
    assign_segments,
    bucket_expr,
    merge_summaries,
    observed_pd_by_bucket,
    observed_pd_counts,
)
from tests.plan.factories import book_states, make_plan, small_book

SEGMENTS = [
    {"id": "late", "when": "dpd > 60", "options": []},
    {"id": "early", "when": "bucket in [M1, M2]", "options": []},
    {"id": "big", "when": "balance >= 3000 and pd < 0.05", "options": []},
    {"id": "stretched", "when": "affordability >= stretched", "options": []},
    {"id": "rest", "options": []},
]


def _accounts(draw_rows: list[tuple[int, int, float | None, int | None]]) -> pl.DataFrame:
    rows = [
        {
            "account_id": k,
            "customer_id": k,
            "dpd": dpd,
            "outstanding_principal_fen": balance,
            "overdue_fen": 0,
            "n_future": 3,
            "next_payment_fen": balance // 5,
            "product_id": "p",
            "method": "flat-fee",
            "loan_id": k,
        }
        for k, (dpd, balance, _, _) in enumerate(draw_rows)
    ]
    return pl.DataFrame(rows)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 400),
            st.integers(1, 2_000_000),
            st.one_of(st.none(), st.floats(0, 1)),
            st.one_of(st.none(), st.integers(1, 3_000_000)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_every_account_lands_in_exactly_one_segment_the_first_it_matches(draw_rows):
    plan = make_plan(segments=SEGMENTS, options=[])
    states = _accounts(draw_rows)
    customers = pl.DataFrame(
        {"customer_id": list(range(len(draw_rows))), "monthly_income_fen": [r[3] for r in draw_rows]},
        schema={"customer_id": pl.Int64, "monthly_income_fen": pl.Int64},
    )
    scores = pl.DataFrame({"account_id": list(range(len(draw_rows))), "pd": [r[2] for r in draw_rows]})
    features = account_features(states, customers, plan=plan, scores=scores)
    placed = assign_segments(features, plan)
    assert placed.unassigned == 0
    assert placed.features.height == len(draw_rows)
    assert int(placed.summary.get_column("accounts").sum()) == len(draw_rows)
    for row in placed.features.to_dicts():
        one = pl.DataFrame([row], schema=placed.features.schema)
        first = next(s.id for s in plan.segments if one.filter(s.when.to_polars()).height == 1)
        assert row["segment"] == first


def test_without_a_catch_all_an_account_may_fall_in_no_segment():
    plan = make_plan(segments=SEGMENTS[:2], options=[])
    features = account_features(_accounts([(0, 100, None, None), (90, 100, None, None)]), None, plan=plan)
    placed = assign_segments(features, plan)
    assert placed.unassigned == 1
    assert placed.features.get_column("segment").to_list() == [None, "late"]


def test_overlapping_conditions_are_counted_pair_by_pair():
    plan = make_plan(
        segments=[
            {"id": "a", "when": "dpd > 10", "options": []},
            {"id": "b", "when": "dpd > 30", "options": []},
            {"id": "c", "when": "dpd <= 10", "options": []},
        ],
        options=[],
    )
    rows = [(0, 1, None, None), (20, 1, None, None), (40, 1, None, None), (50, 1, None, None)]
    placed = assign_segments(account_features(_accounts(rows), None, plan=plan), plan)
    assert placed.in_several == 2
    assert placed.overlaps.to_dicts() == [{"segment": "a", "other": "b", "accounts": 2}]
    assert placed.summary.select("segment", "accounts").rows() == [("a", 3), ("b", 0), ("c", 1)]


def test_account_features_take_the_worst_loan_and_add_up_the_balances():
    states = book_states()
    plan = make_plan()
    features = account_features(
        states, small_book()["customers"], plan=plan, pd_by_bucket={b: 0.1 for b in BUCKET_VALUES}
    )
    by_loans = states.group_by("account_id").agg(
        pl.col("dpd").max(), pl.col("outstanding_principal_fen").sum(), pl.len().alias("n")
    )
    joined = features.join(by_loans, on="account_id")
    assert joined.height == features.height == by_loans.height
    assert (joined["dpd"] == joined["dpd_right"]).all()
    assert (joined["balance_fen"] == joined["outstanding_principal_fen"]).all()
    assert (joined["loans"] == joined["n"]).all()
    assert (features["bucket"] == features.select(bucket_expr(pl.col("dpd"))).to_series()).all()
    assert features["income_fen"].null_count() == 0
    ratio = features["account_payment_fen"] / features["income_fen"]
    assert (abs(features["payment_to_income"] - ratio) < 1e-12).all()
    assert set(features["region"]) == {"CN"}


@pytest.mark.parametrize(
    ("dpd", "bucket"), [(0, "current"), (1, "M1"), (30, "M1"), (31, "M2"), (90, "M3"), (91, "M4+")]
)
def test_buckets_follow_the_servicing_convention(dpd, bucket):
    assert pl.select(bucket_expr(pl.lit(dpd))).item() == bucket


def test_a_scores_table_gives_the_pd_by_loan_account_or_customer():
    states = _accounts([(0, 100, None, None), (0, 100, None, None)]).with_columns(pl.Series("account_id", [7, 7]))
    plan = make_plan()
    by_loan = pl.DataFrame({"loan_id": [0, 1], "pd": [0.02, 0.3]})
    features = account_features(states, None, plan=plan, scores=by_loan)
    assert features.select("account_id", "pd").rows() == [(7, 0.3)]  # the worst loan's
    by_customer = pl.DataFrame({"customer_id": [0], "pd": [0.04]})
    assert account_features(states, None, plan=plan, scores=by_customer)["pd"].to_list() == [0.04]


def test_the_plans_pd_table_wins_over_the_books_observed_one():
    plan = make_plan()  # its assumptions give current: 0.03
    features = account_features(book_states(), None, plan=plan, pd_by_bucket={b: 0.5 for b in BUCKET_VALUES})
    assert set(features.filter(pl.col("bucket") == "current")["pd"]) == {0.03}


def test_the_observed_pd_rises_with_the_bucket_and_needs_a_year_of_history():
    performance = small_book()["performance"].lazy()
    pd = observed_pd_by_bucket([observed_pd_counts(performance)])
    assert pd is not None and list(pd) == list(BUCKET_VALUES)
    assert 0 < pd["current"] < pd["M1"] < pd["M4+"] <= 1
    assert observed_pd_counts(performance, horizon_months=24).height == 0
    assert observed_pd_by_bucket([observed_pd_counts(performance, horizon_months=24)]) is None


def test_summaries_of_two_halves_add_up_to_the_whole():
    states = book_states()
    plan = make_plan()
    whole = assign_segments(account_features(states, None, plan=plan), plan).summary
    ids = states.get_column("account_id").unique().sort()
    cut = len(ids) // 2
    halves = [states.filter(pl.col("account_id").is_in(part.to_list())) for part in (ids[:cut], ids[cut:])]
    parts = [assign_segments(account_features(h, None, plan=plan), plan).summary for h in halves]
    assert_frame_equal(merge_summaries(parts, plan), whole, check_exact=False, rel_tol=1e-12)
