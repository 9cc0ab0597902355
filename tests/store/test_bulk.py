"""Bulk load of a book: every table by the database's bulk path, derived columns and journal that verify clean."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from sqlalchemy import func, select

from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import balance_as_of, read_position
from runoff.app.payments import post_payment
from runoff.errors import InvalidInput
from runoff.servicing.delinquency import days_past_due
from runoff.servicing.vectorized import build_schedules, rate_units
from runoff.store.ledger.bulk import load_book
from runoff.store.ledger.models import LedgerAccount, installments, journal_entries, loans

AS_OF = date(2024, 6, 20)


def synthetic_book(n: int, *, seed: int = 7, as_of: date = AS_OF) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n`` 12-month 18 % loans drawn in 2024; installments due before ``as_of`` paid, except 1 loan in 5."""
    rng = np.random.default_rng(seed)
    principal = rng.integers(1_000, 50_000, n) * 100
    start = np.datetime64("2024-01-01") + rng.integers(0, 120, n).astype("timedelta64[D]")
    arrays = build_schedules(
        "equal-installment", principal_fen=principal, term=12, annual_rate_units=rate_units("0.18"), start_date=start
    )
    ids = np.array([f"B{k:07d}" for k in range(n)])
    mask = arrays.mask
    loan_idx, period = np.nonzero(mask)
    due = arrays.due_date[mask]
    delinquent = (rng.random(n) < 0.2)[loan_idx]
    paid = (due < np.datetime64(as_of)) & ~delinquent
    p_due, i_due = arrays.principal_fen[mask], arrays.interest_fen[mask]
    inst = pl.DataFrame(
        {
            "loan_id": ids[loan_idx],
            "number": period + 1,
            "due_date": due,
            "principal_due_fen": p_due,
            "interest_due_fen": i_due,
            "fee_due_fen": arrays.fee_fen[mask],
            "principal_paid_fen": np.where(paid, p_due, 0),
            "interest_paid_fen": np.where(paid, i_due, 0),
            "penalty_accrued_fen": np.where(delinquent & (due < np.datetime64(as_of)), 150, 0),
        }
    )
    loan_frame = pl.DataFrame(
        {
            "id": ids,
            "product_id": "ei-18",
            "principal_fen": principal,
            "start_date": start,
            "term": 12,
            "customer_id": [f"C{k % max(n // 2, 1):07d}" for k in range(n)],
        }
    )
    return loan_frame, inst


def _load(ledger, product, loan_frame, inst):
    customers = pl.DataFrame({"id": loan_frame["customer_id"].unique()})
    with ledger.uow() as uow:
        result = load_book(
            uow.connection,
            loans_df=loan_frame,
            installments_df=inst,
            customers_df=customers,
            products=[product],
            as_of=AS_OF,
            actor="test",
            now=uow.now(),
        )
        uow.commit()
    return result


def test_bulk_loaded_book_verifies_clean_and_reads_like_the_tape(ledger, equal_installment_product):
    loan_frame, inst = synthetic_book(300)
    result = _load(ledger, equal_installment_product, loan_frame, inst)
    assert (result.loans, result.installments) == (300, inst.height)
    report = verify_ledger(uow=ledger.uow(write=False))
    assert report.ok, report.findings_as_dicts()[:5]
    expected_outstanding = int((inst["principal_due_fen"] - inst["principal_paid_fen"]).sum())
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.sum(loans.c.outstanding_principal_fen))).scalar_one() == expected_outstanding
        assert conn.execute(select(func.count()).select_from(installments)).scalar_one() == inst.height
        kinds = dict(conn.execute(select(journal_entries.c.kind, func.count()).group_by(journal_entries.c.kind)).all())
        dpd = dict(conn.execute(select(loans.c.id, loans.c.dpd)).all())
    assert kinds["disbursement"] == 300
    # The denormalised DPD agrees with the servicing core on the loaded position.
    for loan_id in ("B0000000", "B0000001", "B0000002", "B0000003", "B0000004"):
        assert dpd[loan_id] == days_past_due(read_position(loan_id, uow=ledger.uow(write=False)), AS_OF)


def test_bulk_loaded_loan_takes_a_payment_and_still_verifies(ledger, equal_installment_product):
    loan_frame, inst = synthetic_book(20)
    _load(ledger, equal_installment_product, loan_frame, inst)
    before = balance_as_of("B0000003", AS_OF, uow=ledger.uow(write=False))[LedgerAccount.LOANS_RECEIVABLE]
    result = post_payment(
        "B0000003", Decimal("500.00"), value_date=AS_OF, idempotency_key="after-load", actor="t", uow=ledger.uow()
    )
    after = balance_as_of("B0000003", AS_OF, uow=ledger.uow(write=False))[LedgerAccount.LOANS_RECEIVABLE]
    assert before - after == sum(line.amount for line in result.lines if line.component.value == "principal")
    report = verify_ledger(uow=ledger.uow(write=False))
    assert report.ok, report.findings_as_dicts()[:5]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda lf, inst: (lf.drop("term"), inst), "term"),
        (lambda lf, inst: (pl.concat([lf, lf.head(1)]), inst), "id"),
        (lambda lf, inst: (lf, inst.with_columns(pl.lit("ZZZ").alias("loan_id"))), "loan_id"),
        (lambda lf, inst: (lf.with_columns(pl.lit("other").alias("product_id")), inst), "product_id"),
    ],
    ids=["missing-column", "duplicate-loan", "orphan-installments", "unknown-product"],
)
def test_bad_book_is_refused_naming_the_column_and_nothing_is_written(ledger, equal_installment_product, mutate, field):
    loan_frame, inst = mutate(*synthetic_book(5))
    with pytest.raises(InvalidInput, match=field):
        _load(ledger, equal_installment_product, loan_frame, inst)
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(loans)).scalar_one() == 0
