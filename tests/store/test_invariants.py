"""`ledger verify` finds each kind of broken invariant, names the object, and finds nothing on a sound ledger."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import delete, insert, select, text, update

from runoff.app.ledger_check import CHECKS, verify_ledger
from runoff.app.loans import open_loan
from runoff.app.payments import post_payment
from runoff.store.ledger.models import (
    allocations,
    charge_offs,
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


# --- charge-offs, recoveries and reversals ---------------------------------------------------------------------------


@pytest.fixture
def adjusted_book(book):
    """The book, plus: L2 charged off with two recoveries (one reversed), L3 with a payment reversed (loan reopened)."""
    from runoff.app.charge_offs import write_off
    from runoff.app.recoveries import post_recovery
    from runoff.app.reversals import reverse_payment

    def uow():
        return book.uow()

    write_off("L2", as_of=date(2024, 9, 1), reason="180+", idempotency_key="w-L2", actor="t", uow=uow())
    r1 = post_recovery("L2", "300.00", value_date=date(2024, 9, 5), idempotency_key="r1", actor="t", uow=uow())
    post_recovery("L2", "50.00", value_date=date(2024, 9, 6), idempotency_key="r2", actor="t", uow=uow())
    reverse_payment(r1.payment_id, reason="bounced", idempotency_key="x-r1", actor="t", uow=uow())
    open_loan(
        product=_product(),
        principal="600.00",
        term=3,
        start_date=date(2024, 1, 15),
        actor="t",
        uow=uow(),
        loan_id="L3",
        customer_id="C1",
    )
    payments_l3 = [
        post_payment("L3", Decimal(a), value_date=d, idempotency_key=k, actor="t", uow=uow())
        for a, d, k in (("206.03", date(2024, 2, 15), "l3-1"), ("206.03", date(2024, 3, 20), "l3-2"))
    ]
    reverse_payment(payments_l3[0].payment_id, reason="wrong loan", idempotency_key="x-l3", actor="t", uow=uow())
    return book


def _product():
    from runoff.servicing.product import parse_product

    return parse_product(
        {"id": "ei-18", "method": "equal-installment", "annual_rate": "0.18", "terms": [3, 6, 12]}, source="test"
    )


def test_charge_offs_recoveries_and_reversals_verify_clean(adjusted_book):
    report = verify_ledger(uow=adjusted_book.uow(write=False))
    assert report.ok, report.findings_as_dicts()
    assert report.counts["charge_off_booked"] == report.counts["reversed_payment_nets_to_zero"] == 0


def _reversal_entry_id(ctx) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(text("SELECT MIN(id) FROM journal_entries WHERE kind = 'reversal'")).scalar_one()


def _reversed_payment_id(ctx) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(text("SELECT MIN(id) FROM payments WHERE status = 'reversed'")).scalar_one()


ADJUSTMENT_TAMPERING = {
    "charge_off_booked-amount": (
        "charge_off_booked",
        lambda ctx: [update(charge_offs).values(principal_fen=charge_offs.c.principal_fen + 1)],
    ),
    "charge_off_booked-status": (
        "charge_off_booked",
        lambda ctx: [update(loans).where(loans.c.id == "L2").values(status="closed")],
    ),
    "charge_off_booked-receivable-left": (
        "charge_off_booked",
        lambda ctx: [
            update(journal_lines)
            .where(journal_lines.c.loan_id == "L2", journal_lines.c.account == "loans_receivable")
            .where(journal_lines.c.credit_fen > 0)
            .values(credit_fen=journal_lines.c.credit_fen - 1)
        ],
    ),
    "charge_off_booked-no-charge-off": ("charge_off_booked", lambda ctx: [delete(charge_offs)]),
    "recoveries_match-amount": (
        "recoveries_match",
        lambda ctx: [
            update(payments)
            .where(payments.c.kind == "recovery", payments.c.status == "posted")
            .values(amount_fen=payments.c.amount_fen + 1)
        ],
    ),
    "recoveries_match-open-loan": (
        "recoveries_match",
        lambda ctx: [update(payments).where(payments.c.loan_id == "L1").values(kind="recovery")],
    ),
    "reversal_mirrors_entry-lines": (
        "reversal_mirrors_entry",
        lambda ctx: [
            update(journal_lines)
            .where(journal_lines.c.entry_id == _reversal_entry_id(ctx))
            .values(debit_fen=journal_lines.c.debit_fen * 2, credit_fen=journal_lines.c.credit_fen * 2)
        ],
    ),
    "reversal_mirrors_entry-date": (
        "reversal_mirrors_entry",
        lambda ctx: [
            update(journal_entries)
            .where(journal_entries.c.id == _reversal_entry_id(ctx))
            .values(value_date=date(2030, 1, 1)),
            update(journal_lines)
            .where(journal_lines.c.entry_id == _reversal_entry_id(ctx))
            .values(value_date=date(2030, 1, 1)),
        ],
    ),
    "reversed_payment_nets_to_zero-allocations": (
        "reversed_payment_nets_to_zero",
        lambda ctx: [
            update(allocations).where(allocations.c.payment_id == _reversed_payment_id(ctx)).values(reversed=False)
        ],
    ),
    "reversed_payment_nets_to_zero-journal": (
        "reversed_payment_nets_to_zero",
        lambda ctx: [
            delete(journal_lines).where(journal_lines.c.entry_id == _reversal_entry_id(ctx)),
            delete(journal_entries).where(journal_entries.c.id == _reversal_entry_id(ctx)),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(ADJUSTMENT_TAMPERING), ids=sorted(ADJUSTMENT_TAMPERING))
def test_each_broken_adjustment_invariant_is_found_and_named(adjusted_book, case):
    check, statements = ADJUSTMENT_TAMPERING[case]
    _tamper(adjusted_book, *statements(adjusted_book))
    report = verify_ledger(uow=adjusted_book.uow(write=False))
    assert report.counts[check] >= 1, report.counts
    assert any(f.check == check for f in report.findings)


def test_an_entry_reversed_twice_is_found(adjusted_book):
    """A second, balanced mirror of an entry already reversed: the journal balances, but the loss is taken back twice."""
    reversal = _reversal_entry_id(adjusted_book)
    with adjusted_book.engine.connect() as conn:
        head = conn.execute(select(journal_entries).where(journal_entries.c.id == reversal)).mappings().one()
        lines = conn.execute(select(journal_lines).where(journal_lines.c.entry_id == reversal)).mappings().all()
    copy = 900000
    _tamper(
        adjusted_book,
        insert(journal_entries).values({**head, "id": copy}),
        *[insert(journal_lines).values({**line, "id": copy + k, "entry_id": copy}) for k, line in enumerate(lines)],
    )
    report = verify_ledger(uow=adjusted_book.uow(write=False))
    assert any(f.check == "reversal_mirrors_entry" and "reversed 2 times" in f.message for f in report.findings)


def test_a_bulk_loaded_charged_off_loan_without_a_charge_off_is_still_left_alone(book):
    """A loan that arrives charged-off (bulk load) has no charge-off record and no write-off entry: nothing to check."""
    _tamper(book, update(loans).where(loans.c.id == "L2").values(status="charged-off"))
    report = verify_ledger(uow=book.uow(write=False))
    assert report.ok, report.findings_as_dicts()
