"""Open positions rebuilt from the tables agree with the generator's own month-end snapshot."""

from __future__ import annotations

import polars as pl

from runoff.portfolio.positions import open_positions


def _positions(book: dict[str, pl.DataFrame]):
    as_of = book["performance"]["month_end"].max()
    loans, inst = open_positions(
        loans=book["loans"].lazy(),
        installments=book["installments"].lazy(),
        payments=book["payments"].lazy(),
        performance=book["performance"].lazy(),
        as_of=as_of,
    )
    snap = book["performance"].filter((pl.col("month_end") == as_of) & (pl.col("status") == "active"))
    return as_of, loans, inst, snap


def test_positions_cover_exactly_the_open_loans(small_book: dict[str, pl.DataFrame]) -> None:
    _, loans, inst, snap = _positions(small_book)
    assert loans.height == snap.height > 0
    assert set(inst["loan_id"].unique().to_list()) == set(snap["loan_id"].to_list())


def test_rebuilt_balances_overdue_amounts_and_dpd_match_the_snapshot(small_book: dict[str, pl.DataFrame]) -> None:
    as_of, _, inst, snap = _positions(small_book)
    left = pl.col("principal_fen") - pl.col("principal_paid_fen")
    owed = (
        pl.col("principal_fen")
        + pl.col("interest_fen")
        + pl.col("fee_fen")
        - pl.col("principal_paid_fen")
        - pl.col("interest_paid_fen")
        - pl.col("fee_paid_fen")
        - pl.col("interest_waived_fen")
        - pl.col("fee_waived_fen")
    )
    overdue = pl.col("due_on") < as_of
    rebuilt = inst.group_by("loan_id").agg(
        left.sum().alias("balance"),
        left.filter(overdue).sum().alias("overdue_principal"),
        (owed.filter(overdue).sum() + (pl.col("penalty_accrued_fen") - pl.col("penalty_paid_fen")).sum()).alias(
            "overdue_amount"
        ),
        pl.col("due_on").filter(owed > 0).min().alias("oldest_unpaid"),
    )
    joined = snap.join(rebuilt, on="loan_id").with_columns(
        pl.when(pl.col("oldest_unpaid") < as_of)
        .then((pl.lit(as_of) - pl.col("oldest_unpaid")).dt.total_days())
        .otherwise(0)
        .alias("rebuilt_dpd")
    )
    assert (joined["balance"] == joined["principal_balance_fen"]).all()
    assert (joined["overdue_principal"] == joined["overdue_principal_fen"]).all()
    assert (joined["overdue_amount"] == joined["overdue_amount_fen"]).all()
    assert (joined["rebuilt_dpd"] == joined["dpd"]).all()
    assert joined.filter(pl.col("dpd") > 0).height > 0  # the check covers delinquent loans too


def test_paid_and_waived_never_exceed_what_fell_due(small_book: dict[str, pl.DataFrame]) -> None:
    _, _, inst, _ = _positions(small_book)
    for component in ("principal", "interest", "fee"):
        due = inst[f"{component}_fen"]
        assert (inst[f"{component}_paid_fen"] >= 0).all() and (inst[f"{component}_paid_fen"] <= due).all()
    assert (inst["interest_paid_fen"] + inst["interest_waived_fen"] <= inst["interest_fen"]).all()
    assert (inst["penalty_paid_fen"] <= inst["penalty_accrued_fen"]).all()
