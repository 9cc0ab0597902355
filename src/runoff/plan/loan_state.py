"""Where each open loan stands on the offer date (贷款现状): the inputs offers are priced from, one row per loan.

The state is computed from installment positions (what each installment asks and what has been paid and
waived, the shape :func:`runoff.portfolio.positions.open_positions` rebuilds from the book and the ledger
stores), with the same definitions as the Decimal quotes of :mod:`runoff.servicing.quotes`:

* arrears are what installments due on or before the offer date still owe; penalty (罚息) is recomputed to
  the offer date by :mod:`runoff.servicing.delinquency`'s convention (each overdue installment earns
  ``daily_rate × unpaid base`` for each day from its due date plus grace days to the day before the offer
  date; amounts without payment dates count as paid by the due date), less what was paid or waived;
* installments falling due after the offer date are the future; the first of them is the current period,
  which starts at its ``accrual_start`` (else the previous due date, else the drawing date);
* ``current_remaining`` is everything unpaid under the current schedule plus penalty to date.

Loans whose penalty is capped, or given as ``penalty_to_date_fen`` (the ledger's exact figure), use that
instead of the recomputation. :func:`installment_rows` turns servicing :class:`LoanPosition` s into the same
rows, so ledger loans and book loans go through one path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

import numpy as np
import polars as pl

from runoff.errors import InvalidInput
from runoff.money import RoundingMode, from_minor, to_minor
from runoff.servicing.delinquency import penalty_due_to_date
from runoff.servicing.position import InstallmentPosition, LoanPosition
from runoff.servicing.product import PenaltyBase, Product

LOAN_COLUMNS: tuple[str, ...] = ("loan_id", "account_id", "customer_id", "product_id", "start_date")
"""Required per loan; optional: ``annual_rate`` / ``fee_rate`` (the live schedule's, Float64 or text; null:
the product's), ``credit_balance_fen``, ``penalty_charged_fen``."""

INSTALLMENT_COLUMNS: tuple[str, ...] = (
    "loan_id",
    "number",
    "due_on",
    "principal_fen",
    "interest_fen",
    "fee_fen",
    "principal_paid_fen",
    "interest_paid_fen",
    "fee_paid_fen",
)
"""Required per installment; optional (0 when absent): ``principal_waived_fen``, ``interest_waived_fen``,
``fee_waived_fen``, ``penalty_accrued_fen``, ``penalty_paid_fen``, ``penalty_waived_fen``; ``accrual_start``
(null when absent) and ``penalty_to_date_fen`` (the installment's total penalty earned to the offer date)."""

_OPTIONAL_AMOUNTS = (
    "principal_waived_fen",
    "interest_waived_fen",
    "fee_waived_fen",
    "penalty_accrued_fen",
    "penalty_paid_fen",
    "penalty_waived_fen",
)
RATE_SCALE = 10**8
PPB = 10**9


def product_table(products: Sequence[Product]) -> pl.DataFrame:
    """The per-product terms the state and the vectorized pricer need, one row per product id."""
    rows = []
    for p in products:
        rows.append(
            {
                "product_id": p.id,
                "method": p.method.value,
                "product_annual_rate": float(p.annual_rate) if p.annual_rate is not None else None,
                "product_fee_rate": float(p.fee_rate) if p.fee_rate is not None else None,
                "penalty_rate_ppb": _ppb(p),
                "penalty_on_amount": p.penalty.base is PenaltyBase.OVERDUE_AMOUNT,
                "penalty_grace_days": p.penalty.grace_days,
                "penalty_capped": p.penalty.cap_rate_of_principal is not None,
                "half_even": p.rounding.mode is RoundingMode.HALF_EVEN,
            }
        )
    schema = {
        "product_id": pl.String,
        "method": pl.String,
        "product_annual_rate": pl.Float64,
        "product_fee_rate": pl.Float64,
        "penalty_rate_ppb": pl.Int64,
        "penalty_on_amount": pl.Boolean,
        "penalty_grace_days": pl.Int64,
        "penalty_capped": pl.Boolean,
        "half_even": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _ppb(product: Product) -> int:
    scaled = product.penalty.daily_rate * PPB
    if scaled != scaled.to_integral_value():
        raise InvalidInput(
            f"product {product.id}: penalty.daily_rate {product.penalty.daily_rate} has more than 9 decimals; "
            "expected a daily rate in parts per billion",
            field="penalty.daily_rate",
        )
    return int(scaled)


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"`{what}`: column(s) {', '.join(missing)} missing; expected at least {', '.join(columns)}", field=what
        )


def _round_div(num: pl.Expr, den: int, half_even: pl.Expr) -> pl.Expr:
    """``num / den`` rounded to an integer, half-up or (where ``half_even``) half-even; ``num`` ≥ 0."""
    quotient = num // den
    twice = 2 * (num - quotient * den)
    up = (twice > den) | ((twice == den) & (~half_even | (quotient % 2 == 1)))
    return quotient + up.cast(pl.Int64)


def sorted_by_loan(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` in (loan, number) order; a table already in that order (the usual case) is not sorted again."""
    ids = rows.get_column("loan_id").to_numpy()
    numbers = rows.get_column("number").to_numpy()
    if ids.size < 2:
        return rows
    step = ids[1:] != ids[:-1] if ids.dtype == object else ids[1:] > ids[:-1]
    same = ids[1:] == ids[:-1]
    if ids.dtype != object and bool(np.all(step | (same & (numbers[1:] > numbers[:-1])))):
        return rows
    return rows.sort("loan_id", "number")


def beside_their_loans(rows: pl.DataFrame, loans: pl.DataFrame) -> pl.DataFrame:
    """Installment rows (sorted by loan and number) with their loan's columns, for the loans in both tables.

    When both hold the same loans (the usual case), the loan columns are gathered by position instead of joined.
    """
    rows = sorted_by_loan(rows)
    loans = loans.sort("loan_id")
    row_ids = rows.get_column("loan_id")
    boundary = np.r_[True, (row_ids[1:] != row_ids[:-1]).to_numpy()] if rows.height else np.zeros(0, dtype=bool)
    if (
        rows.height
        and loans.height == int(boundary.sum())
        and row_ids.filter(pl.Series(boundary)).equals(loans.get_column("loan_id"), check_names=False)
    ):
        index = np.cumsum(boundary) - 1
        return pl.concat([rows, loans.drop("loan_id")[index]], how="horizontal")
    return rows.join(loans, on="loan_id", how="inner", maintain_order="left")


def loan_states(
    loans: pl.DataFrame,
    installments: pl.DataFrame,
    products: Sequence[Product],
    *,
    as_of: date,
) -> pl.DataFrame:
    """One row per loan with something left to pay, with what its offers are priced from (see the module docstring).

    Columns: the loan's ids, ``product_id``, ``method``, ``annual_rate`` / ``fee_rate`` (Float64, the live
    schedule's), ``outstanding_principal_fen``, ``arrears_{principal,interest,fee}_fen``, ``penalty_fen``,
    ``future_{principal,interest,fee}_fen``, ``current_remaining_fen``, ``n_future``, ``current_interest_fen``,
    ``current_fee_fen``, ``period_start``, ``current_due``, ``next_payment_fen``, ``maturity``, ``dpd``,
    ``overdue_fen`` (arrears and penalty), ``credit_balance_fen``.
    """
    _require(loans, LOAN_COLUMNS, "loans")
    _require(installments, INSTALLMENT_COLUMNS, "installments")
    catalogue = product_table(products)
    unknown = loans.join(catalogue, on="product_id", how="anti").get_column("product_id").unique().to_list()
    if unknown:
        raise InvalidInput(
            f"`product_id`: {unknown[0]!r} is not among the products given; expected one of "
            f"{', '.join(catalogue.get_column('product_id').to_list())}",
            field="product_id",
        )
    rows = installments.with_columns(
        [pl.lit(0, dtype=pl.Int64).alias(c) for c in _OPTIONAL_AMOUNTS if c not in installments.columns]
    )
    if "accrual_start" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Date).alias("accrual_start"))
    given_penalty = "penalty_to_date_fen" in rows.columns
    key_dtype = loans.schema["loan_id"]
    terms = loans.select("loan_id", "product_id", "start_date").join(catalogue, on="product_id", how="left")
    rows = beside_their_loans(rows.with_columns(pl.col("loan_id").cast(key_dtype)), terms).with_columns(
        (pl.col("principal_fen") - pl.col("principal_waived_fen") - pl.col("principal_paid_fen")).alias("p_out"),
        (pl.col("interest_fen") - pl.col("interest_waived_fen") - pl.col("interest_paid_fen")).alias("i_out"),
        (pl.col("fee_fen") - pl.col("fee_waived_fen") - pl.col("fee_paid_fen")).alias("f_out"),
        (pl.col("due_on") <= as_of).alias("due_by"),
        (pl.col("due_on") > as_of).alias("future"),
    )
    if not given_penalty:
        rows = _penalty_to_date(rows, loans, products, as_of=as_of)
    # Rows are sorted by loan and number, so the previous row is the previous installment when it is the same
    # loan's, and the future installments (due after as_of) are each loan's last ones.
    same_loan = pl.col("loan_id") == pl.col("loan_id").shift(1)
    first_future = pl.col("future") & ~(same_loan & pl.col("future").shift(1)).fill_null(False)
    scheduled = pl.col("p_out") + pl.col("i_out") + pl.col("f_out")
    unpaid = (pl.col("p_out") > 0) | (pl.col("i_out") > 0) | (pl.col("f_out") > 0)
    left = scheduled + pl.col("penalty_accrued_fen") - pl.col("penalty_waived_fen") - pl.col("penalty_paid_fen")

    def where(condition: pl.Expr, value: pl.Expr, name: str) -> pl.Expr:
        return pl.when(condition).then(value).otherwise(0).alias(name)

    def first(value: pl.Expr, name: str) -> pl.Expr:
        return pl.when(pl.col("_first")).then(value).otherwise(None).alias(name)

    rows = rows.with_columns(first_future.alias("_first"), same_loan.fill_null(False).alias("_same")).with_columns(
        (pl.col("penalty_to_date_fen") - pl.col("penalty_paid_fen") - pl.col("penalty_waived_fen"))
        .clip(0)
        .alias("penalty_fen"),
        where(pl.col("due_by"), pl.col("p_out").clip(0), "arrears_principal_fen"),
        where(pl.col("due_by"), pl.col("i_out").clip(0), "arrears_interest_fen"),
        where(pl.col("due_by"), pl.col("f_out").clip(0), "arrears_fee_fen"),
        where(pl.col("future"), pl.col("p_out").clip(0), "future_principal_fen"),
        where(pl.col("future"), pl.col("i_out"), "future_interest_fen"),
        where(pl.col("future"), pl.col("f_out"), "future_fee_fen"),
        scheduled.alias("scheduled_left_fen"),
        first(pl.col("i_out").clip(0), "current_interest_fen"),
        first(pl.col("f_out").clip(0), "current_fee_fen"),
        first(scheduled, "next_payment_fen"),
        first(
            pl.coalesce(
                "accrual_start",
                pl.when(pl.col("_same")).then(pl.col("due_on").shift(1)).otherwise(None),
                "start_date",
            ),
            "period_start",
        ),
        first(pl.col("due_on"), "current_due"),
        (left > 0).alias("open"),
        pl.when((pl.col("due_on") < as_of) & unpaid).then(pl.col("due_on")).otherwise(None).alias("oldest_unpaid"),
    )
    summed = (
        "arrears_principal_fen",
        "arrears_interest_fen",
        "arrears_fee_fen",
        "penalty_fen",
        "future_principal_fen",
        "future_interest_fen",
        "future_fee_fen",
        "scheduled_left_fen",
    )
    state = rows.group_by("loan_id", maintain_order=True).agg(
        pl.col("p_out").sum().alias("outstanding_principal_fen"),
        *(pl.col(c).sum() for c in summed),
        pl.col("future").sum().cast(pl.Int64).alias("n_future"),
        *(pl.col(c).max() for c in ("current_interest_fen", "current_fee_fen", "next_payment_fen")),
        pl.col("period_start").max(),
        pl.col("current_due").max(),
        pl.col("due_on").max().alias("maturity"),
        pl.col("open").any(),
        pl.col("oldest_unpaid").min(),
    )
    extra = [c for c in ("annual_rate", "fee_rate", "credit_balance_fen") if c in loans.columns]
    out = (
        loans.select(*LOAN_COLUMNS, *extra)
        .join(state, on="loan_id", how="inner")
        .join(catalogue.select("product_id", "method", "product_annual_rate", "product_fee_rate"), on="product_id")
    )
    for name in ("annual_rate", "fee_rate"):
        if name not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
        else:
            out = out.with_columns(pl.col(name).cast(pl.Float64))
    if "credit_balance_fen" not in out.columns:
        out = out.with_columns(pl.lit(0, dtype=pl.Int64).alias("credit_balance_fen"))
    flat = pl.col("method") == "flat-fee"
    return (
        out.with_columns(
            pl.when(flat).then(None).otherwise(pl.coalesce("annual_rate", "product_annual_rate")).alias("annual_rate"),
            pl.when(flat).then(pl.coalesce("fee_rate", "product_fee_rate")).otherwise(None).alias("fee_rate"),
            (pl.col("scheduled_left_fen") + pl.col("penalty_fen")).alias("current_remaining_fen"),
            (
                pl.col("arrears_principal_fen")
                + pl.col("arrears_interest_fen")
                + pl.col("arrears_fee_fen")
                + pl.col("penalty_fen")
            ).alias("overdue_fen"),
            pl.when(pl.col("oldest_unpaid").is_null())
            .then(0)
            .otherwise((pl.lit(as_of) - pl.col("oldest_unpaid")).dt.total_days())
            .cast(pl.Int64)
            .alias("dpd"),
            pl.col("credit_balance_fen").fill_null(0),
            pl.col("next_payment_fen").fill_null(0),
        )
        .drop("product_annual_rate", "product_fee_rate", "scheduled_left_fen", "oldest_unpaid")
        .filter(pl.col("open"))  # a settled loan (nothing scheduled or charged left) has no options
        .drop("open")
    )


_INT64_LIMIT = 2**62


def _penalty_to_date(
    rows: pl.DataFrame, loans: pl.DataFrame, products: Sequence[Product], *, as_of: date
) -> pl.DataFrame:
    """Each installment's penalty earned to ``as_of``, in integers; capped products and huge bases exactly."""
    days = ((pl.lit(as_of) - pl.col("due_on")).dt.total_days() - pl.col("penalty_grace_days")).clip(0)
    base = (
        pl.when(pl.col("penalty_on_amount"))
        .then(pl.col("p_out").clip(0) + pl.col("i_out").clip(0) + pl.col("f_out").clip(0))
        .otherwise(pl.col("p_out").clip(0))
    )
    rows = rows.with_columns(base.alias("_base"), days.alias("_days"))
    too_big = (pl.col("_base").cast(pl.Float64) * pl.col("penalty_rate_ppb") * pl.col("_days")) >= _INT64_LIMIT
    exact_rows = rows.filter((pl.col("penalty_capped") | too_big) & (pl.col("_days") > 0) & (pl.col("_base") > 0))
    rows = rows.with_columns(
        pl.when(too_big)
        .then(0)
        .otherwise(_round_div(pl.col("_base") * pl.col("penalty_rate_ppb") * pl.col("_days"), PPB, pl.col("half_even")))
        .alias("penalty_to_date_fen")
    ).drop("_base", "_days")
    exact_ids = exact_rows.get_column("loan_id").unique().to_list()
    if not exact_ids:
        return rows
    by_id = {p.id: p for p in products}
    loan_rows = {r["loan_id"]: r for r in loans.filter(pl.col("loan_id").is_in(exact_ids)).to_dicts()}
    fixes = []
    for loan_id, group in rows.filter(pl.col("loan_id").is_in(exact_ids)).group_by("loan_id"):
        loan = loan_rows[loan_id[0]]
        position = position_of(loan, group.to_dicts(), by_id[str(loan["product_id"])])
        for charge in penalty_due_to_date(position, as_of):
            fixes.append({"loan_id": loan_id[0], "number": charge.number, "_exact": to_minor(charge.amount)})
    fix = pl.DataFrame(
        fixes, schema={"loan_id": rows.schema["loan_id"], "number": rows.schema["number"], "_exact": pl.Int64}
    )
    return (
        rows.join(fix, on=["loan_id", "number"], how="left")
        .with_columns(pl.coalesce("_exact", "penalty_to_date_fen").alias("penalty_to_date_fen"))
        .drop("_exact")
    )


# --- ledger positions as rows ---------------------------------------------------------------------------------------


def installment_rows(
    positions: Sequence[LoanPosition],
    *,
    as_of: date,
    accounts: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(loans, installments) frames for :func:`loan_states` from servicing positions (the ledger's loans).

    ``accounts`` maps a loan id to its (account id, customer id); without it a loan is its own account.
    Penalty to ``as_of`` is the Decimal engine's (dated payments and caps included).
    """
    loans = []
    rows = []
    for pos in positions:
        account, customer = (accounts or {}).get(pos.loan_id, (None, None))
        loans.append(
            {
                "loan_id": pos.loan_id,
                "account_id": account or pos.loan_id,
                "customer_id": customer or account or pos.loan_id,
                "product_id": pos.product.id,
                "start_date": pos.start_date,
                "annual_rate": None if pos.annual_rate is None else str(pos.annual_rate),
                "fee_rate": None if pos.fee_rate is None else str(pos.fee_rate),
                "credit_balance_fen": to_minor(pos.credit_balance),
            }
        )
        penalties = {c.number: c.amount for c in penalty_due_to_date(pos, as_of)}
        for inst in pos.installments:
            rows.append(
                {
                    "loan_id": pos.loan_id,
                    "number": inst.number,
                    "due_on": inst.due_date,
                    "accrual_start": inst.accrual_start,
                    "principal_fen": to_minor(inst.principal_due),
                    "interest_fen": to_minor(inst.interest_due),
                    "fee_fen": to_minor(inst.fee_due),
                    "principal_paid_fen": to_minor(inst.principal_paid),
                    "interest_paid_fen": to_minor(inst.interest_paid),
                    "fee_paid_fen": to_minor(inst.fee_paid),
                    "penalty_accrued_fen": to_minor(inst.penalty_accrued),
                    "penalty_paid_fen": to_minor(inst.penalty_paid),
                    "penalty_waived_fen": to_minor(inst.penalty_waived),
                    "penalty_to_date_fen": to_minor(penalties[inst.number]),
                }
            )
    loan_schema = {
        "loan_id": pl.String,
        "account_id": pl.String,
        "customer_id": pl.String,
        "product_id": pl.String,
        "start_date": pl.Date,
        "annual_rate": pl.String,
        "fee_rate": pl.String,
        "credit_balance_fen": pl.Int64,
    }
    inst_schema = {
        "loan_id": pl.String,
        "number": pl.Int64,
        "due_on": pl.Date,
        "accrual_start": pl.Date,
        **{
            c: pl.Int64
            for c in (
                "principal_fen",
                "interest_fen",
                "fee_fen",
                "principal_paid_fen",
                "interest_paid_fen",
                "fee_paid_fen",
                "penalty_accrued_fen",
                "penalty_paid_fen",
                "penalty_waived_fen",
                "penalty_to_date_fen",
            )
        },
    }
    return (
        pl.DataFrame(loans, schema=loan_schema, orient="row"),
        pl.DataFrame(rows, schema=inst_schema, orient="row"),
    )


def position_of(loan: Mapping[str, object], rows: Sequence[Mapping[str, object]], product: Product) -> LoanPosition:
    """A servicing position from one loan's row and installment rows (the exact path of the pricer)."""

    def fen(row: Mapping[str, object], name: str) -> Decimal:
        value = row.get(name)
        return from_minor(int(value)) if isinstance(value, int) else Decimal("0.00")

    def rate(name: str) -> Decimal | None:
        value = loan.get(name)
        if value is None:
            return None
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))

    installments = tuple(
        InstallmentPosition(
            number=int(str(r["number"])),
            due_date=r["due_on"],  # type: ignore[arg-type]
            principal_due=fen(r, "principal_fen") - fen(r, "principal_waived_fen"),
            interest_due=fen(r, "interest_fen") - fen(r, "interest_waived_fen"),
            fee_due=fen(r, "fee_fen") - fen(r, "fee_waived_fen"),
            principal_paid=fen(r, "principal_paid_fen"),
            interest_paid=fen(r, "interest_paid_fen"),
            fee_paid=fen(r, "fee_paid_fen"),
            penalty_accrued=fen(r, "penalty_accrued_fen"),
            penalty_paid=fen(r, "penalty_paid_fen"),
            penalty_waived=fen(r, "penalty_waived_fen"),
            accrual_start=r.get("accrual_start"),  # type: ignore[arg-type]
        )
        for r in sorted(rows, key=lambda r: int(str(r["number"])))
    )
    flat_rate = rate("fee_rate")
    annual = rate("annual_rate")
    credit = loan.get("credit_balance_fen")
    return LoanPosition(
        loan_id=str(loan["loan_id"]),
        product=product,
        principal=sum((i.principal_due for i in installments), Decimal("0.00")),
        start_date=loan["start_date"],  # type: ignore[arg-type]
        installments=installments,
        credit_balance=from_minor(credit) if isinstance(credit, int) else Decimal("0.00"),
        penalty_charged_total=sum((i.penalty_accrued for i in installments), Decimal("0.00")),
        annual_rate=annual if annual is not None and annual != product.annual_rate else None,
        fee_rate=flat_rate if flat_rate is not None and flat_rate != product.fee_rate else None,
    )
