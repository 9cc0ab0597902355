"""A six-loan book written out by hand, small enough to compute every figure on paper.

Month ends 2024-01-31, 2024-02-29, 2024-03-31 (amounts in fen):

| loan | cust | product | term | vintage | principal | Jan                  | Feb                  | Mar                      |
|------|------|---------|------|---------|-----------|----------------------|----------------------|--------------------------|
| 1    | 1    | P       | 3    | 2024-01 | 3000      | current 3000 (mob 0) | current 2000         | current 1000             |
| 2    | 1    | P       | 6    | 2024-01 | 6000      | current 6000         | M1 6000 dpd 10       | M2 6000 dpd 41           |
| 3    | 2    | Q       | 3    | 2024-01 | 1200      | current 1200         | prepaid (closed, 0)  | —                        |
| 4    | 3    | Q       | 6    | 2023-11 | 8000      | M3 5000 dpd 70 mob 2 | M4+ 5000 dpd 99      | charged off 5000         |
| 5    | 4    | P       | 3    | 2024-02 | 2400      | —                    | current 2400 (mob 0) | M1 2400 dpd 5            |
| 6    | 2    | Q       | 6    | 2024-01 | 1800      | current 1800         | M1 1800 dpd 20       | current 1500 (cured)     |

Customers: 1 checkout/tier-1/grade A, 2 app/tier-2/grade B, 3 app/tier-2/grade E, 4 checkout/tier-1/grade C.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from runoff.portfolio.schemas import CUSTOMERS, LOANS, PERFORMANCE

JAN, FEB, MAR = date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)

# loan, cust, month_end, mob, status, bucket, dpd, balance, overdue_principal, overdue_amount, paid_principal,
# paid_penalty, charged_off
_ROWS = [
    (1, 1, JAN, 0, "active", "current", 0, 3000, 0, 0, 0, 0, 0),
    (1, 1, FEB, 1, "active", "current", 0, 2000, 0, 0, 1000, 0, 0),
    (1, 1, MAR, 2, "active", "current", 0, 1000, 0, 0, 1000, 0, 0),
    (2, 1, JAN, 0, "active", "current", 0, 6000, 0, 0, 0, 0, 0),
    (2, 1, FEB, 1, "active", "M1", 10, 6000, 1000, 1050, 0, 0, 0),
    (2, 1, MAR, 2, "active", "M2", 41, 6000, 2000, 2100, 0, 0, 0),
    (3, 2, JAN, 0, "active", "current", 0, 1200, 0, 0, 0, 0, 0),
    (3, 2, FEB, 1, "early-settled", "closed", 0, 0, 0, 0, 1200, 0, 0),
    (4, 3, JAN, 2, "active", "M3", 70, 5000, 2500, 3000, 0, 0, 0),
    (4, 3, FEB, 3, "active", "M4+", 99, 5000, 3000, 3500, 0, 0, 0),
    (4, 3, MAR, 4, "charged-off", "charged-off", 130, 0, 0, 0, 0, 0, 5000),
    (5, 4, FEB, 0, "active", "current", 0, 2400, 0, 0, 0, 0, 0),
    (5, 4, MAR, 1, "active", "M1", 5, 2400, 800, 800, 0, 0, 0),
    (6, 2, JAN, 0, "active", "current", 0, 1800, 0, 0, 0, 0, 0),
    (6, 2, FEB, 1, "active", "M1", 20, 1800, 300, 320, 0, 0, 0),
    (6, 2, MAR, 2, "active", "current", 0, 1500, 0, 0, 300, 20, 0),
]


def hand_performance() -> pl.DataFrame:
    cols = [
        "loan_id",
        "customer_id",
        "month_end",
        "mob",
        "status",
        "bucket",
        "dpd",
        "principal_balance_fen",
        "overdue_principal_fen",
        "overdue_amount_fen",
        "paid_principal_fen",
        "paid_penalty_fen",
        "charged_off_fen",
    ]
    frame = pl.DataFrame(_ROWS, schema=cols, orient="row")
    zeros = [c.name for c in PERFORMANCE.columns if c.name not in cols]
    frame = frame.with_columns([pl.lit(0).alias(c) for c in zeros])
    return PERFORMANCE.conform(frame)


def hand_loans() -> pl.DataFrame:
    rows = [
        (1, 1, "P", 3, "2024-01", 3000),
        (2, 1, "P", 6, "2024-01", 6000),
        (3, 2, "Q", 3, "2024-01", 1200),
        (4, 3, "Q", 6, "2023-11", 8000),
        (5, 4, "P", 3, "2024-02", 2400),
        (6, 2, "Q", 6, "2024-01", 1800),
    ]
    frame = pl.DataFrame(
        rows, schema=["loan_id", "customer_id", "product_id", "term_months", "vintage", "principal_fen"], orient="row"
    )
    frame = frame.with_columns(
        pl.col("customer_id").alias("account_id"),
        pl.lit("equal-installment").alias("method"),
        pl.lit(0.18).alias("annual_rate"),
        pl.lit(None, dtype=pl.Float64).alias("fee_rate"),
        (pl.col("vintage") + "-05").str.to_date().alias("originated_on"),
        (pl.col("vintage") + "-05").str.to_date().dt.offset_by("1mo").alias("first_due_on"),
        (pl.col("vintage") + "-05").str.to_date().dt.offset_by("6mo").alias("maturity_on"),
        pl.lit("active").alias("status"),
        pl.lit(None, dtype=pl.Date).alias("closed_on"),
    )
    return LOANS.conform(frame)


def hand_customers() -> pl.DataFrame:
    rows = [
        (1, "checkout", "tier-1", "A", 800_000),
        (2, "app", "tier-2", "B", 500_000),
        (3, "app", "tier-2", "E", 300_000),
        (4, "checkout", "tier-1", "C", 600_000),
    ]
    frame = pl.DataFrame(
        rows, schema=["customer_id", "channel", "city_tier", "risk_grade", "monthly_income_fen"], orient="row"
    )
    frame = frame.with_columns(
        pl.lit(30).alias("age"),
        pl.lit("5k-8k").alias("income_band"),
        pl.lit(date(2022, 1, 1)).alias("onboarded_on"),
        pl.lit(24).alias("tenure_months"),
    )
    return CUSTOMERS.conform(frame)


def hand_book() -> dict[str, pl.DataFrame]:
    """The three tables of the hand-written book."""
    return {"performance": hand_performance(), "loans": hand_loans(), "customers": hand_customers()}
