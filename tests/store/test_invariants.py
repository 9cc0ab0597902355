"""`ledger verify` finds each kind of broken invariant, names the object, and finds nothing on a sound ledger."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import delete, insert, text, update

from runoff.app.ledger_check import CHECKS, verify_ledger
from runoff.app.loans import open_loan
from runoff.app.payments import post_payment
from runoff.store.ledger.models import (
    allocations,
    customers,
    installments,
    journal_entries,
    journal_lines,
    loans,
    payments,
    schedule_versions,
)


@pytest.fixture
def book(ledger, equal_installment_product):
    """Two loans, one paid once (payment 1) with a little overpayment held as credit."""
    for loan_id in ("L1", "L2"):
        open_loan(
            product=equal_installment_product,
            principal="1200.00",
            term=12,
            start_date=date(2024, 1, 15),
            actor="t",
            uow=ledger.uow(),
            loan_id=loan_id,
            customer_id="C1",
        )
    post_payment(
        "L1", Decimal("120.00"), value_date=date(2024, 2, 15), idempotency_key="p1", actor="t", uow=ledger.uow()
    )
    return ledger


def _tamper(ctx, *statements):
    with ctx.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # to plant orphans on purpose
        for s in statements:
            conn.execute(s)


def _payment_entry_id(ctx) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(text("SELECT id FROM journal_entries WHERE kind = 'payment'")).scalar_one()


def test_sound_ledger_has_no_findings(book):
    report = verify_ledger(uow=book.uow(write=False))
    assert report.ok and report.findings == ()
    assert set(report.counts) == set(CHECKS)
    assert (report.loans, report.payments) == (2, 1)


TAMPERING = {
    "schedule_principal": lambda ctx: [update(loans).where(loans.c.id == "L2").values(outstanding_principal_fen=5)],
    "principal_allocated": lambda ctx: [
        update(installments)
        .where(installments.c.loan_id == "L2", installments.c.number == 1)
        .values(principal_paid_fen=100, principal_due_fen=installments.c.principal_due_fen + 100)
    ],
    "receivable_matches_journal": lambda ctx: [
        update(journal_lines)
        .where(journal_lines.c.loan_id == "L2", journal_lines.c.account == "loans_receivable")
        .values(debit_fen=1)
    ],
    "penalty_matches_journal": lambda ctx: [
        update(installments)
        .where(installments.c.loan_id == "L2", installments.c.number == 1)
        .values(penalty_accrued_fen=50)
    ],
    "credit_matches_journal": lambda ctx: [update(loans).where(loans.c.id == "L2").values(credit_balance_fen=7)],
    "live_version_exists": lambda ctx: [update(loans).where(loans.c.id == "L2").values(schedule_version=9)],
    "loan_references": lambda ctx: [update(loans).where(loans.c.id == "L2").values(customer_id="GHOST")],
    "payment_allocations": lambda ctx: [
        update(allocations).where(allocations.c.component == "interest").values(amount_fen=1)
    ],
    "payment_cash": lambda ctx: [update(payments).values(status="reversed")],
    "entry_balanced": lambda ctx: [
        update(journal_lines)
        .where(journal_lines.c.entry_id == _payment_entry_id(ctx), journal_lines.c.account == "cash_clearing")
        .values(debit_fen=1)
    ],
    "line_matches_entry": lambda ctx: [
        update(journal_lines)
        .where(journal_lines.c.entry_id == _payment_entry_id(ctx))
        .values(value_date=date(2024, 2, 16))
    ],
    "orphan_rows": lambda ctx: [
        insert(journal_lines).values(
            entry_id=999999, loan_id=None, account="cash_clearing", value_date=date(2024, 1, 1), debit_fen=1
        )
    ],
}


@pytest.mark.parametrize("check", sorted(TAMPERING), ids=sorted(TAMPERING))
def test_each_broken_invariant_is_found_and_named(book, check):
    _tamper(book, *TAMPERING[check](book))
    report = verify_ledger(uow=book.uow(write=False))
    assert not report.ok
    assert report.counts[check] >= 1, report.counts
    assert any(f.check == check for f in report.findings)


def test_orphans_of_every_kind_are_found(book):
    _tamper(
        book,
        delete(schedule_versions).where(schedule_versions.c.loan_id == "L2"),
        delete(customers),
        update(journal_entries).where(journal_entries.c.kind == "disbursement").values(reverses_entry_id=424242),
    )
    report = verify_ledger(uow=book.uow(write=False))
    kinds = {(f.check, f.object_type) for f in report.findings}
    assert ("orphan_rows", "installments") in kinds
    assert ("orphan_rows", "journal_entries") in kinds
    assert ("live_version_exists", "loan") in kinds
    assert ("loan_references", "loan") in kinds


def test_limit_keeps_the_count_but_lists_fewer(book):
    _tamper(book, update(loans).values(outstanding_principal_fen=3))
    report = verify_ledger(uow=book.uow(write=False), limit=1)
    assert report.counts["schedule_principal"] == 2
    assert sum(1 for f in report.findings if f.check == "schedule_principal") == 1
