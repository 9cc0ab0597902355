"""Current positions of the book's open loans (存量头寸) at a month end, installment by installment.

The book's tables keep the schedule as written (``installments``) and every payment with its split
(``payments``); a ledger wants, per installment, what has been paid, waived and charged. This module
rebuilds that from the tables, by the generator's allocation rules:

* ordinary payments (scheduled, late, partial) go to installments oldest first, and within an
  installment fee, interest, then principal, so each component's total paid fills the installments in
  order and the one partly paid installment is the oldest unpaid one;
* a prepayment (提前还款) pays the principal of the last installments and waives their interest and
  fees, so those installments are the longest run at the end whose principal adds up to the prepaid
  principal;
* penalty interest (罚息) charged and paid is carried on the oldest unpaid installment (the tables
  keep it per loan).
"""

from __future__ import annotations

from datetime import date

import polars as pl


def open_positions(
    *,
    loans: pl.LazyFrame,
    installments: pl.LazyFrame,
    payments: pl.LazyFrame,
    performance: pl.LazyFrame,
    as_of: date,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Open loans at month end ``as_of`` (with their DPD) and their installments with amounts paid and waived."""
    snapshot = performance.filter((pl.col("month_end") == as_of) & (pl.col("status") == "active")).select(
        "loan_id", "dpd", "bucket"
    )
    open_loans = loans.join(snapshot, on="loan_id", how="inner").sort("loan_id").collect()
    ids = open_loans.select("loan_id").lazy()

    paid = (
        payments.join(ids, on="loan_id", how="semi")
        .filter(pl.col("paid_on") <= as_of)
        .group_by("loan_id")
        .agg(
            pl.col("principal_fen").filter(pl.col("kind") != "prepayment").sum().alias("paid_principal"),
            pl.col("principal_fen").filter(pl.col("kind") == "prepayment").sum().alias("prepaid_principal"),
            pl.col("interest_fen").sum().alias("paid_interest"),
            pl.col("fee_fen").sum().alias("paid_fee"),
            pl.col("penalty_fen").sum().alias("paid_penalty"),
        )
    )
    charged = (
        performance.join(ids, on="loan_id", how="semi")
        .filter(pl.col("month_end") <= as_of)
        .group_by("loan_id")
        .agg(pl.col("penalty_charged_fen").sum().alias("charged_penalty"))
    )

    def filled(total: str, due: str) -> pl.Expr:
        before = pl.col(due).cum_sum().over("loan_id") - pl.col(due)
        return (pl.col(total) - before).clip(lower_bound=0, upper_bound=pl.col(due))

    rows = (
        installments.join(ids, on="loan_id", how="semi")
        .join(paid, on="loan_id", how="left")
        .join(charged, on="loan_id", how="left")
        .with_columns(pl.col("^paid_.*$", "prepaid_principal", "charged_penalty").fill_null(0))
        .sort("loan_id", "number")
        .with_columns(
            (
                (pl.col("prepaid_principal") > 0)
                & (pl.col("principal_fen").reverse().cum_sum().reverse().over("loan_id") <= pl.col("prepaid_principal"))
            ).alias("prepaid")
        )
        .with_columns(
            pl.when(pl.col("prepaid"))
            .then(pl.col("principal_fen"))
            .otherwise(filled("paid_principal", "principal_fen"))
            .alias("principal_paid_fen"),
            pl.when(pl.col("prepaid"))
            .then(0)
            .otherwise(filled("paid_interest", "interest_fen"))
            .alias("interest_paid_fen"),
            pl.when(pl.col("prepaid")).then(0).otherwise(filled("paid_fee", "fee_fen")).alias("fee_paid_fen"),
            pl.when(pl.col("prepaid")).then(pl.col("interest_fen")).otherwise(0).alias("interest_waived_fen"),
            pl.when(pl.col("prepaid")).then(pl.col("fee_fen")).otherwise(0).alias("fee_waived_fen"),
        )
        .with_columns(
            (
                (pl.col("principal_paid_fen") + pl.col("interest_paid_fen") + pl.col("fee_paid_fen"))
                < (pl.col("principal_fen") + pl.col("interest_fen") + pl.col("fee_fen"))
            ).alias("unpaid")
        )
        .with_columns(
            (pl.col("unpaid") & (pl.col("unpaid").cast(pl.Int32).cum_sum().over("loan_id") == 1)).alias("oldest_unpaid")
        )
        .with_columns(
            pl.when(pl.col("oldest_unpaid")).then(pl.col("charged_penalty")).otherwise(0).alias("penalty_accrued_fen"),
            pl.when(pl.col("oldest_unpaid")).then(pl.col("paid_penalty")).otherwise(0).alias("penalty_paid_fen"),
        )
        .select(
            "loan_id",
            "number",
            "due_on",
            "principal_fen",
            "interest_fen",
            "fee_fen",
            "principal_paid_fen",
            "interest_paid_fen",
            "fee_paid_fen",
            "interest_waived_fen",
            "fee_waived_fen",
            "penalty_accrued_fen",
            "penalty_paid_fen",
        )
        .collect()
    )
    return open_loans, rows
