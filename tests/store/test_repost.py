"""The repost of one loan: the pure replay of its payments, written back for that loan only, journal mirrored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from runoff.app.close_day import close_day, repost_loan
from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import open_loan, read_position
from runoff.app.payments import post_payment
from runoff.errors import Conflict, NotFound
from runoff.servicing.allocation import replay_payments
from runoff.store.ledger.models import TABLES_IN_LOAD_ORDER, allocations, journal_entries, loans
from runoff.store.ledger.repost import loans_to_repost, repost_loans

START = date(2024, 1, 15)
NOW = datetime(2024, 6, 30, 9, 0, tzinfo=UTC)
D = Decimal


def _open(ctx, product, loan_id, *, principal="1200.00", term=12):
    return open_loan(
        product=product, principal=principal, term=term, start_date=START, actor="t", uow=ctx.uow(), loan_id=loan_id
    )


def _pay(ctx, loan_id, amount, on, key):
    return post_payment(loan_id, D(amount), value_date=on, idempotency_key=key, actor="t", uow=ctx.uow())


def _close_through(ctx, first, last):
    day = first
    while day <= last:
        close_day(as_of=day, actor="t", uow=ctx.uow())
        day += timedelta(days=1)


def _assert_clean(ctx):
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def _rows_of(ctx, loan_id):
    """Every row that belongs to ``loan_id``, table by table (the audit log aside)."""
    out = {}
    with ctx.engine.connect() as conn:
        for table in TABLES_IN_LOAD_ORDER:
            column = table.c.get("loan_id") if table is not loans else table.c.id
            if column is None:
                continue
            out[table.name] = sorted(tuple(map(str, r)) for r in conn.execute(select(table).where(column == loan_id)))
    return out


def test_repost_writes_what_the_pure_replay_of_the_payments_gives(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, "A")
    _pay(ledger, "A", "60.00", date(2024, 2, 20), "a1")
    _close_through(ledger, date(2024, 2, 10), date(2024, 3, 25))
    _pay(ledger, "A", "80.00", date(2024, 3, 25), "a2")
    backdated = _pay(ledger, "A", "100.00", date(2024, 2, 16), "a3")  # learnt late
    assert backdated.backdated
    expected, _ = replay_payments(
        read_position("A", uow=ledger.uow(write=False)),
        [(date(2024, 2, 16), D("100.00")), (date(2024, 2, 20), D("60.00")), (date(2024, 3, 25), D("80.00"))],
        as_of=date(2024, 3, 25),
    )
    with ledger.uow() as uow:
        (result,) = repost_loans(uow.ledger, ["A"], actor="t", now=NOW)
        uow.commit()
    assert (result.requested_from, result.as_of) == (date(2024, 2, 16), date(2024, 3, 25))
    assert result.reposted_from <= date(2024, 2, 16)
    reposted = read_position("A", uow=ledger.uow(write=False))
    assert reposted.installments == expected.installments
    assert reposted.credit_balance == expected.credit_balance
    assert result.penalty_after_fen < result.penalty_before_fen  # paid earlier, charged less
    with ledger.engine.connect() as conn:
        row = conn.execute(select(loans.c.repost_from, loans.c.penalty_charged_fen).where(loans.c.id == "A")).one()
    assert row.repost_from is None
    assert row.penalty_charged_fen == result.penalty_after_fen
    _assert_clean(ledger)


def test_repost_touches_no_other_loan(ledger, equal_installment_product):
    for loan_id in ("A", "B"):
        _open(ledger, equal_installment_product, loan_id)
        _pay(ledger, loan_id, "30.00", date(2024, 2, 18), f"{loan_id}1")
    _close_through(ledger, date(2024, 2, 10), date(2024, 3, 5))
    _pay(ledger, "A", "100.00", date(2024, 2, 16), "late")
    before = _rows_of(ledger, "B")
    repost_loan("A", from_date=None, actor="t", uow=ledger.uow())
    assert _rows_of(ledger, "B") == before
    _assert_clean(ledger)


def test_repost_again_writes_nothing(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, "A")
    _close_through(ledger, date(2024, 2, 10), date(2024, 3, 5))
    _pay(ledger, "A", "100.00", date(2024, 2, 16), "late")
    first = repost_loan("A", from_date=None, actor="t", uow=ledger.uow())
    assert first.entries_posted > 0
    with ledger.engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES_IN_LOAD_ORDER}
    again = repost_loan("A", from_date=date(2024, 2, 10), actor="t", uow=ledger.uow())
    assert (again.allocations_reversed, again.allocations_posted, again.entries_posted) == (0, 0, 0)
    with ledger.engine.connect() as conn:
        after = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES_IN_LOAD_ORDER}
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in counts.items() if k != "audit_log"}
    _assert_clean(ledger)


def test_repost_mirrors_each_replaced_entry_on_its_own_value_date(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, "A")
    _close_through(ledger, date(2024, 2, 10), date(2024, 3, 1))
    _pay(ledger, "A", "100.00", date(2024, 2, 16), "late")
    result = repost_loan("A", from_date=None, actor="t", uow=ledger.uow())
    je = journal_entries
    with ledger.engine.connect() as conn:
        originals = dict(conn.execute(select(je.c.id, je.c.value_date).where(je.c.loan_id == "A")).all())
        mirrors = conn.execute(
            select(je.c.reverses_entry_id, je.c.value_date).where(je.c.reverses_entry_id.is_not(None))
        )
        mirrored = [(originals[entry_id], value_date) for entry_id, value_date in mirrors]
    assert len(mirrored) == result.entries_reversed > 0
    assert all(original == mirror and mirror >= date(2024, 2, 16) for original, mirror in mirrored)


def test_backdated_payment_that_pays_everything_closes_the_loan_at_the_repost(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product, "A", principal="300.00", term=3)
    total = sum((i.total for i in opened.schedule.installments), D(0))
    _close_through(ledger, date(2024, 2, 10), date(2024, 5, 1))
    _pay(ledger, "A", str(total), date(2024, 2, 15), "all-at-once")  # would have settled every due date by credit
    result = close_day(as_of=date(2024, 5, 2), actor="t", uow=ledger.uow())
    assert result.reposted == 1
    with ledger.engine.connect() as conn:
        status, closed_on = conn.execute(select(loans.c.status, loans.c.closed_on).where(loans.c.id == "A")).one()
    assert (status, closed_on) == ("closed", opened.schedule.installments[-1].due_date)
    position = read_position("A", uow=ledger.uow(write=False))
    assert all(i.penalty_accrued == 0 and i.is_settled for i in position.installments)
    _assert_clean(ledger)


def test_repost_of_a_prepaid_flat_fee_loan_starts_from_the_schedule_as_written(ledger, flat_fee_product):
    opened = _open(ledger, flat_fee_product, "F", principal="600.00", term=6)
    _close_through(ledger, date(2024, 2, 10), date(2024, 3, 20))
    _pay(ledger, "F", "400.00", date(2024, 3, 20), "prepay")  # pays what is due, prepays principal, reprices
    _pay(ledger, "F", "50.00", date(2024, 2, 20), "late")
    repost_loan("F", from_date=None, actor="t", uow=ledger.uow())
    written = read_position("F", uow=ledger.uow(write=False))
    as_written = [(i.interest, i.fee) for i in opened.schedule.installments]
    replayed, _ = replay_payments(
        _with_dues(written, as_written),
        [(date(2024, 2, 20), D("50.00")), (date(2024, 3, 20), D("400.00"))],
        as_of=date(2024, 3, 20),
    )
    assert [(i.principal_paid, i.fee_paid, i.fee_due, i.penalty_accrued) for i in written.installments] == [
        (i.principal_paid, i.fee_paid, i.fee_due, i.penalty_accrued) for i in replayed.installments
    ]
    _assert_clean(ledger)


def _with_dues(position, dues):
    return replace(
        position,
        installments=tuple(
            replace(i, interest_due=interest, fee_due=fee)
            for i, (interest, fee) in zip(position.installments, dues, strict=True)
        ),
    )


def test_loans_to_repost_lists_flagged_open_loans_up_to_the_close_date(ledger, equal_installment_product):
    for loan_id in ("A", "B", "C"):
        _open(ledger, equal_installment_product, loan_id)
    _close_through(ledger, date(2024, 2, 10), date(2024, 3, 1))
    _pay(ledger, "C", "20.00", date(2024, 2, 20), "c")
    _pay(ledger, "A", "20.00", date(2024, 2, 12), "a")
    with ledger.engine.connect() as conn:
        assert loans_to_repost(conn, as_of=date(2024, 3, 2)) == ["A", "C"]
        assert loans_to_repost(conn, as_of=date(2024, 2, 15)) == ["A"]


@pytest.mark.parametrize(
    ("loan_id", "error", "match"),
    [("NOPE", NotFound, "no loan 'NOPE'"), ("GONE", Conflict, "GONE is closed")],
    ids=["unknown-loan", "closed-loan"],
)
def test_repost_refuses_unknown_and_closed_loans(ledger, equal_installment_product, loan_id, error, match):
    _open(ledger, equal_installment_product, "GONE", principal="300.00", term=3)
    with ledger.engine.begin() as conn:  # charged off, say
        conn.execute(update(loans).where(loans.c.id == "GONE").values(status="closed", closed_on=START))
    with pytest.raises(error, match=match):
        repost_loan(loan_id, from_date=None, actor="t", uow=ledger.uow())
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(allocations.c.reversed.is_(True))).scalar_one() == 0
