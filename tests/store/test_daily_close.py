"""The set-based daily close's store steps: closed-form penalty, pages, the cap's fallback, bulk writes, resets."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from sqlalchemy import select, update

from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import apply_schedule, open_loan, read_position
from runoff.app.payments import post_payment
from runoff.servicing.delinquency import Bucket, bucket_of, days_past_due, penalty_due_to_date
from runoff.servicing.product import Product, parse_product
from runoff.servicing.schedule import build_schedule
from runoff.store.ledger.daily_close import (
    age_and_accrue,
    apply_credit_falling_due,
    bulk_update,
    delinquent_count,
    reset_current,
)
from runoff.store.ledger.models import installments, journal_entries, loans

NOW = datetime(2024, 6, 30, 9, 0, tzinfo=UTC)
START = date(2024, 1, 10)
D = Decimal


def _product(pid: str, **penalty: object) -> Product:
    return parse_product(
        {"id": pid, "method": "equal-principal", "annual_rate": "0.24", "terms": [6], "penalty": penalty}, source="test"
    )


PRODUCTS = (
    _product("p-principal"),
    _product("p-amount", base="overdue-amount", daily_rate="0.0011", grace_days=2),
    _product("p-cap", daily_rate="0.004", cap_rate_of_principal="0.03"),
    _product("p-cap-loose", base="overdue-amount", daily_rate="0.000123456", cap_rate_of_principal="0.9"),
)


def _random_book(ctx, *, loans_count: int, seed: int, until: date) -> list[str]:
    """Loans on every product with partial payments on random days up to ``until`` (posted in date order)."""
    rng = random.Random(seed)
    ids = []
    for k in range(loans_count):
        loan_id = f"R{k:03d}"
        product = PRODUCTS[k % len(PRODUCTS)]
        open_loan(
            product=product,
            principal=str(rng.randrange(1000, 3000)),
            term=6,
            start_date=START,
            actor="test",
            uow=ctx.uow(),
            loan_id=loan_id,
        )
        ids.append(loan_id)
    plan = sorted(
        (START + timedelta(days=rng.randrange(25, (until - START).days)), loan_id, rng.randrange(5, 150))
        for loan_id in ids
        for _ in range(rng.randrange(0, 4))
    )
    for n, (day, loan_id, amount) in enumerate(plan):
        post_payment(loan_id, D(amount), value_date=day, idempotency_key=f"k{n}", actor="test", uow=ctx.uow())
    return ids


def _penalties(ctx) -> dict[tuple[str, int], int]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(installments.c.loan_id, installments.c.number, installments.c.penalty_accrued_fen)
        ).all()
    return {(r[0], r[1]): r[2] for r in rows}


@pytest.mark.parametrize("chunk_size", [1, 7, 10_000], ids=["one-loan-pages", "odd-pages", "one-page"])
def test_aging_equals_servicing_for_every_loan_whatever_the_page_size(ledger, chunk_size):
    ids = _random_book(ledger, loans_count=24, seed=11, until=date(2024, 5, 1))
    as_of = date(2024, 5, 20)
    with ledger.uow() as uow:
        totals = age_and_accrue(uow.ledger, as_of, close_id=None, actor="test", now=NOW, chunk_size=chunk_size)
        uow.commit()
    assert totals.loans == delinquent_count_after(ledger, as_of)
    with ledger.uow(write=False) as uow:
        positions = uow.ledger.positions(uow.ledger.loans(ids).values())
        rows = {r.id: r for r in uow.ledger.loans(ids).values()}
    for loan_id, position in positions.items():
        expected = [c.amount for c in penalty_due_to_date(position, as_of)]
        assert [i.penalty_accrued for i in position.installments] == expected, loan_id
        dpd = days_past_due(position, as_of)
        assert (rows[loan_id].dpd, rows[loan_id].bucket) == (dpd, bucket_of(dpd).value), loan_id
    assert totals.capped_loans > 0  # the 3 % cap binds on some loans: computed on their positions
    assert totals.pages == -(-totals.loans // chunk_size)


def delinquent_count_after(ctx, as_of: date) -> int:
    with ctx.engine.connect() as conn:
        return delinquent_count(conn, as_of)


def test_aging_twice_for_the_same_day_charges_nothing_more(ledger):
    _random_book(ledger, loans_count=12, seed=5, until=date(2024, 4, 1))
    as_of = date(2024, 4, 15)
    for expected_more in (True, False):
        with ledger.uow() as uow:
            totals = age_and_accrue(uow.ledger, as_of, close_id=None, actor="test", now=NOW)
            uow.commit()
        assert (totals.penalty_fen > 0) is expected_more
        assert (totals.entries > 0) is expected_more


def test_overdue_amounts_are_what_is_left_of_installments_due_before_the_close(ledger):
    _random_book(ledger, loans_count=8, seed=3, until=date(2024, 3, 1))
    as_of = date(2024, 3, 25)
    with ledger.uow() as uow:
        age_and_accrue(uow.ledger, as_of, close_id=None, actor="test", now=NOW)
        uow.commit()
    with ledger.uow(write=False) as uow:
        records = uow.ledger.loans(f"R{k:03d}" for k in range(8))
        positions = uow.ledger.positions(records.values())
    for loan_id, position in positions.items():
        overdue = [i for i in position.installments if i.due_date < as_of]
        principal = sum((i.principal_due - i.principal_paid for i in overdue), D(0))
        amount = sum((i.outstanding_scheduled for i in overdue), D(0))
        record = records[loan_id]
        if record.dpd:
            assert (record.overdue_principal_fen, record.overdue_amount_fen) == (
                int(principal * 100),
                int(amount * 100),
            ), loan_id


def test_penalty_accrued_past_the_close_date_is_left_alone(ledger):
    product = PRODUCTS[0]
    open_loan(product=product, principal="600", term=6, start_date=START, actor="t", uow=ledger.uow(), loan_id="F")
    # a payment dated 03-20 brings penalties to 03-20; a close of 03-05 must not take them back
    post_payment("F", D("10"), value_date=date(2024, 3, 20), idempotency_key="f", actor="t", uow=ledger.uow())
    before = _penalties(ledger)
    with ledger.uow() as uow:
        totals = age_and_accrue(uow.ledger, date(2024, 3, 5), close_id=None, actor="t", now=NOW)
        uow.commit()
    assert totals.penalty_fen == 0
    assert _penalties(ledger) == before
    with ledger.engine.connect() as conn:
        row = conn.execute(select(loans.c.dpd, loans.c.penalty_accrued_until).where(loans.c.id == "F")).one()
    assert tuple(row) == ((date(2024, 3, 5) - date(2024, 2, 10)).days, date(2024, 3, 20))


def test_amounts_paid_before_the_ledger_history_count_as_paid_on_time(ledger):
    """An imported loan's paid columns with no dated allocation: servicing reads them as paid by the due date."""
    product = PRODUCTS[1]
    open_loan(product=product, principal="600", term=6, start_date=START, actor="t", uow=ledger.uow(), loan_id="I")
    with ledger.engine.begin() as conn:  # as a tape import leaves it: half of installment 1 paid, undated
        conn.execute(
            update(installments)
            .where(installments.c.loan_id == "I", installments.c.number == 1)
            .values(principal_paid_fen=5000)
        )
        conn.execute(update(loans).where(loans.c.id == "I").values(outstanding_principal_fen=55000))
    as_of = date(2024, 4, 2)
    with ledger.uow() as uow:
        age_and_accrue(uow.ledger, as_of, close_id=None, actor="t", now=NOW)
        uow.commit()
    with ledger.uow(write=False) as uow:
        position = uow.ledger.position("I")
    assert [i.penalty_accrued for i in position.installments] == [
        c.amount for c in penalty_due_to_date(position, as_of)
    ]
    assert position.installments[0].penalty_accrued > 0


def test_credit_is_spent_on_each_due_date_with_penalty_brought_to_that_day(ledger):
    product = PRODUCTS[0]
    open_loan(product=product, principal="600", term=6, start_date=START, actor="t", uow=ledger.uow(), loan_id="C")
    post_payment("C", D("250"), value_date=date(2024, 2, 10), idempotency_key="c", actor="t", uow=ledger.uow())
    with ledger.uow() as uow:
        spent = apply_credit_falling_due(uow.ledger, date(2024, 4, 20), close_id=None, actor="t", now=NOW)
        uow.commit()
    assert spent.loans == 1 and spent.spent_fen > 0
    with ledger.uow(write=False) as uow:
        position = uow.ledger.position("C")
    paid_on = {p.paid_on for i in position.installments for p in i.dated_payments}
    assert {date(2024, 3, 10), date(2024, 4, 10)} <= paid_on  # spent on the due dates, not at the close


def test_bulk_update_sets_columns_by_composite_key_on_both_databases(ledger):
    open_loan(product=PRODUCTS[0], principal="600", term=6, start_date=START, actor="t", uow=ledger.uow(), loan_id="B")
    with ledger.uow() as uow:
        bulk_update(
            uow.connection,
            installments,
            ("loan_id", "schedule_version", "number"),
            pl.DataFrame(
                {
                    "loan_id": ["B", "B"],
                    "schedule_version": [1, 1],
                    "number": [2, 5],
                    "penalty_accrued_fen": [12, 34],
                    "settled_on": pl.Series([date(2024, 3, 1), None], dtype=pl.Date),
                }
            ),
        )
        bulk_update(
            uow.connection,
            loans,
            ("id",),
            pl.DataFrame({"id": ["B"], "bucket": ["M2"], "updated_at": pl.Series([NOW])}),
        )
        uow.commit()
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(installments.c.number, installments.c.penalty_accrued_fen, installments.c.settled_on)
            .where(installments.c.loan_id == "B")
            .order_by(installments.c.number)
        ).all()
        loan = conn.execute(select(loans.c.bucket, loans.c.updated_at).where(loans.c.id == "B")).one()
    assert [tuple(r) for r in rows] == [
        (1, 0, None),
        (2, 12, date(2024, 3, 1)),
        (3, 0, None),
        (4, 0, None),
        (5, 34, None),
        (6, 0, None),
    ]
    assert loan[0] == "M2"
    assert loan[1].replace(tzinfo=None) == NOW.replace(tzinfo=None)


def test_reset_brings_a_loan_without_arrears_back_to_current(ledger):
    open_loan(product=PRODUCTS[0], principal="600", term=6, start_date=START, actor="t", uow=ledger.uow(), loan_id="S")
    with ledger.engine.begin() as conn:  # stale arrears: what a close run backwards can leave behind
        conn.execute(update(loans).where(loans.c.id == "S").values(dpd=40, bucket="M2", overdue_principal_fen=100))
    with ledger.uow() as uow:
        assert reset_current(uow.connection, date(2024, 2, 1), now=NOW) == 1
        assert reset_current(uow.connection, date(2024, 2, 1), now=NOW) == 0
        uow.commit()
    with ledger.engine.connect() as conn:
        row = conn.execute(select(loans.c.dpd, loans.c.bucket, loans.c.overdue_principal_fen)).one()
    assert tuple(row) == (0, Bucket.CURRENT.value, 0)


def test_aging_posts_one_balanced_penalty_entry_per_loan_charged(ledger):
    _random_book(ledger, loans_count=10, seed=9, until=date(2024, 3, 1))
    with ledger.uow() as uow:
        totals = age_and_accrue(uow.ledger, date(2024, 4, 1), close_id=None, actor="t", now=NOW)
        uow.commit()
    with ledger.engine.connect() as conn:
        kinds = (
            conn.execute(select(journal_entries.c.loan_id).where(journal_entries.c.kind == "penalty_accrual"))
            .scalars()
            .all()
        )
    assert len(kinds) >= totals.entries > 0
    report = verify_ledger(uow=ledger.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def test_a_rescheduled_loan_is_aged_on_its_live_version_with_the_cap_on_that_principal(ledger):
    product = PRODUCTS[2]  # 0.4 %/day, capped at 3 % of principal
    open_loan(product=product, principal="1000", term=6, start_date=START, actor="t", uow=ledger.uow(), loan_id="V")
    with ledger.uow() as uow:  # version 1 falls behind and is charged penalty
        age_and_accrue(uow.ledger, date(2024, 3, 25), close_id=None, actor="t", now=NOW)
        uow.commit()
    haircut = build_schedule(product, principal=D("900.00"), term=6, start_date=date(2024, 4, 1))
    apply_schedule("V", haircut, reason="restructure", actor="t", uow=ledger.uow())
    as_of = date(2024, 8, 20)  # version 2's first three installments overdue; the cap binds
    with ledger.uow() as uow:
        totals = age_and_accrue(uow.ledger, as_of, close_id=None, actor="t", now=NOW)
        uow.commit()
    position = read_position("V", uow=ledger.uow(write=False))
    assert position.schedule_version == 2 and position.principal == D("900.00")
    charges = penalty_due_to_date(position, as_of)
    assert [i.penalty_accrued for i in position.installments] == [c.amount for c in charges]
    assert position.penalty_charged_total > sum((c.amount for c in charges), D(0))  # version 1's counts for the cap
    assert totals.capped_loans == 1
    with ledger.engine.connect() as conn:
        dpd = conn.execute(select(loans.c.dpd).where(loans.c.id == "V")).scalar_one()
    assert dpd == days_past_due(position, as_of) == (as_of - date(2024, 5, 1)).days
