"""Posting payments: atomic, idempotent, journaled, refused cleanly, and safe under concurrent writers."""

from __future__ import annotations

import gc
import multiprocessing
import random
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from runoff.app.batches import THREAD_NAME
from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import balance_as_of, open_loan, read_position
from runoff.app.payments import PaymentRequest, post_payment, post_payments, residual_to_sweep
from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from runoff.servicing.delinquency import penalty_due_to_date
from runoff.servicing.product import Component
from runoff.store.ledger.models import (
    TABLES_IN_LOAD_ORDER,
    EntryKind,
    LedgerAccount,
    journal_entries,
    journal_lines,
    loans,
    payments,
)

START = date(2024, 1, 15)


def _open(ctx, product, *, loan_id="L1", principal="1200.00", term=12, start=START):
    return open_loan(
        product=product, principal=principal, term=term, start_date=start, actor="test", uow=ctx.uow(), loan_id=loan_id
    )


def _pay(ctx, amount, on, key, loan_id="L1"):
    return post_payment(loan_id, Decimal(amount), value_date=on, idempotency_key=key, actor="test", uow=ctx.uow())


def _row_counts(ctx) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES_IN_LOAD_ORDER}


def _assert_clean(ctx):
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def test_on_time_payment_pays_interest_then_principal_and_verifies_clean(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    first = opened.schedule.installments[0]
    result = _pay(ledger, first.total, first.due_date, "k1")
    assert result.total_of(Component.INTEREST) == first.interest == Decimal("18.00")
    assert result.total_of(Component.PRINCIPAL) == first.principal
    assert result.credited == 0 and not result.replayed
    assert result.outstanding_principal == Decimal("1200.00") - first.principal
    _assert_clean(ledger)


def test_same_key_twice_posts_once_and_replays_the_first_result(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    first = _pay(ledger, "110.00", date(2024, 2, 15), "same-key")
    again = _pay(ledger, "110.00", date(2024, 2, 15), "same-key")
    assert again.replayed and not first.replayed
    assert (again.payment_id, again.lines, again.credited) == (first.payment_id, first.lines, first.credited)
    assert _row_counts(ledger)["payments"] == 1
    _assert_clean(ledger)


@pytest.mark.parametrize(
    ("loan_id", "amount", "on"),
    [
        ("L1", "110.01", date(2024, 2, 15)),
        ("L1", "110.00", date(2024, 2, 16)),
        ("L2", "110.00", date(2024, 2, 15)),
    ],
    ids=["other-amount", "other-date", "other-loan"],
)
def test_same_key_for_a_different_payment_is_refused_naming_the_key(
    ledger, equal_installment_product, loan_id, amount, on
):
    _open(ledger, equal_installment_product)
    _open(ledger, equal_installment_product, loan_id="L2")
    _pay(ledger, "110.00", date(2024, 2, 15), "key-7")
    before = _row_counts(ledger)
    with pytest.raises(IdempotencyConflict, match="key-7"):
        _pay(ledger, amount, on, "key-7", loan_id=loan_id)
    assert _row_counts(ledger) == before


@pytest.mark.parametrize(
    ("loan_id", "amount", "on", "error", "field"),
    [
        ("NOPE", "10.00", date(2024, 2, 15), NotFound, "loan"),
        ("L1", "0", date(2024, 2, 15), InvalidInput, "amount"),
        ("L1", "-5.00", date(2024, 2, 15), InvalidInput, "amount"),
        ("L1", "10.001", date(2024, 2, 15), InvalidInput, "amount"),
        ("L1", "10.00", date(2024, 1, 14), InvalidInput, "value_date"),
    ],
    ids=["unknown-loan", "zero", "negative", "sub-cent", "before-start"],
)
def test_bad_payment_is_refused_and_writes_nothing(
    ledger, equal_installment_product, loan_id, amount, on, error, field
):
    _open(ledger, equal_installment_product)
    before = _row_counts(ledger)
    with pytest.raises(error, match=field):
        post_payment(loan_id, amount, value_date=on, idempotency_key="bad", actor="test", uow=ledger.uow())
    assert _row_counts(ledger) == before


def test_payment_on_a_closed_loan_is_refused_and_writes_nothing(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product, term=3)
    results = [_pay(ledger, i.total, i.due_date, f"k{i.number}") for i in opened.schedule.installments]
    assert [r.loan_status for r in results] == ["open", "open", "closed"]
    last_due = opened.schedule.installments[-1].due_date
    before = _row_counts(ledger)
    with pytest.raises(Conflict, match="closed"):
        _pay(ledger, "1.00", last_due, "after-close")
    assert _row_counts(ledger) == before
    _assert_clean(ledger)


def test_every_journal_entry_balances_and_cash_equals_payments(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    for k, inst in enumerate(opened.schedule.installments[:4]):
        _pay(ledger, inst.total, inst.due_date, f"k{k}")
    with ledger.engine.connect() as conn:
        debits, credits = conn.execute(
            select(func.sum(journal_lines.c.debit_fen), func.sum(journal_lines.c.credit_fen))
        ).one()
        paid = conn.execute(select(func.sum(payments.c.amount_fen))).scalar_one()
        cash_in = conn.execute(
            select(func.sum(journal_lines.c.debit_fen))
            .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
            .where(journal_entries.c.kind == EntryKind.PAYMENT.value, journal_lines.c.account == "cash_clearing")
        ).scalar_one()
    assert debits == credits
    assert cash_in == paid == sum(int(i.total * 100) for i in opened.schedule.installments[:4])
    _assert_clean(ledger)


def test_balance_as_of_a_past_date_reads_the_journal_by_value_date(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    i1, i2 = opened.schedule.installments[:2]
    _pay(ledger, i1.total, i1.due_date, "k1")
    _pay(ledger, i2.total, i2.due_date, "k2")
    receivable = {
        d: balance_as_of("L1", d, uow=ledger.uow(write=False))[LedgerAccount.LOANS_RECEIVABLE]
        for d in (date(2024, 1, 14), START, date(2024, 2, 14), i1.due_date, i2.due_date)
    }
    assert receivable == {
        date(2024, 1, 14): Decimal("0.00"),
        START: Decimal("1200.00"),
        date(2024, 2, 14): Decimal("1200.00"),
        i1.due_date: Decimal("1200.00") - i1.principal,
        i2.due_date: Decimal("1200.00") - i1.principal - i2.principal,
    }
    income = balance_as_of("L1", i1.due_date, uow=ledger.uow(write=False))[LedgerAccount.INTEREST_INCOME]
    assert income == i1.interest


def test_late_payment_pays_the_penalty_the_servicing_core_computes(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    late = date(2024, 3, 1)  # installment 1 (due 15 Feb) is 15 days late
    expected = sum(c.amount for c in penalty_due_to_date(read_position("L1", uow=ledger.uow(write=False)), late))
    # Overdue principal 92.02 × 0.05 % a day × 15 days (15 to 29 February) = 0.69015 → 0.69.
    assert expected == Decimal("0.69")
    result = _pay(ledger, "200.00", late, "late")
    assert result.penalty_charged == expected
    assert result.total_of(Component.PENALTY) == expected
    _assert_clean(ledger)


def test_residual_below_tolerance_is_swept_and_the_loan_closes(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product, term=3)
    *earlier, last = opened.schedule.installments
    for inst in earlier:
        _pay(ledger, inst.total, inst.due_date, f"k{inst.number}")
    after_all_due = last.due_date
    result = _pay(ledger, last.total - Decimal("0.50"), after_all_due, "nearly-all")
    assert result.waived == Decimal("0.50")
    assert result.loan_status == "closed"
    with ledger.engine.connect() as conn:
        status, reason, outstanding = conn.execute(
            select(loans.c.status, loans.c.close_reason, loans.c.outstanding_principal_fen)
        ).one()
    assert (status, reason, outstanding) == ("closed", "residual-swept", 0)
    balances = balance_as_of("L1", after_all_due, uow=ledger.uow(write=False))
    assert balances[LedgerAccount.LOANS_RECEIVABLE] == 0
    assert balances[LedgerAccount.WAIVERS] == Decimal("0.50")
    _assert_clean(ledger)


def test_residual_at_or_above_tolerance_stays_open(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product, term=3)
    *earlier, last = opened.schedule.installments
    for inst in earlier:
        _pay(ledger, inst.total, inst.due_date, f"k{inst.number}")
    result = _pay(ledger, last.total - Decimal("1.00"), last.due_date, "k")
    assert (result.waived, result.loan_status) == (Decimal("0"), "open")
    assert residual_to_sweep(read_position("L1", uow=ledger.uow(write=False))) == 0


def test_overpayment_held_as_credit_is_spent_by_the_next_payment_when_due(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    i1, i2 = opened.schedule.installments[:2]
    first = _pay(ledger, i1.total + Decimal("50.00"), i1.due_date, "over")
    assert first.credited == Decimal("50.00")
    second = _pay(ledger, i2.total - Decimal("50.00"), i2.due_date, "rest")
    assert second.credited == 0
    position = read_position("L1", uow=ledger.uow(write=False))
    assert position.credit_balance == 0
    assert position.installments[1].is_settled
    _assert_clean(ledger)


def test_prepayment_of_principal_shortens_the_schedule_and_verifies(ledger, flat_fee_product):
    _open(ledger, flat_fee_product, term=6, principal="600.00")
    result = _pay(ledger, "300.00", date(2024, 2, 15), "prepay")
    assert result.prepaid_principal > 0
    assert result.credited == 0
    _assert_clean(ledger)


def test_backdated_payment_flags_the_loan_for_repost(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    i1 = opened.schedule.installments[0]
    _pay(ledger, "10.00", date(2024, 3, 1), "later")
    result = _pay(ledger, i1.total, date(2024, 2, 20), "earlier")
    assert result.backdated
    with ledger.engine.connect() as conn:
        assert conn.execute(select(loans.c.repost_from)).scalar_one() == date(2024, 2, 20)
    _assert_clean(ledger)


def test_batch_posts_like_one_by_one_and_reports_each_refusal(ledger, equal_installment_product):
    one_by_one = _open(ledger, equal_installment_product, loan_id="A")
    _open(ledger, equal_installment_product, loan_id="B")
    plan = [(inst.total, inst.due_date) for inst in one_by_one.schedule.installments[:5]]
    singles = [_pay(ledger, amount, on, f"A-{k}", loan_id="A") for k, (amount, on) in enumerate(plan)]
    batch = [PaymentRequest("B", amount, on, f"B-{k}") for k, (amount, on) in enumerate(plan)]
    batch += [
        PaymentRequest("B", plan[0][0], plan[0][1], "B-0"),  # repeated inside the batch: replay
        PaymentRequest("B", Decimal("1.00"), plan[0][1], "B-1"),  # same key, other amount: conflict
        PaymentRequest("NOPE", Decimal("1.00"), plan[0][1], "B-x"),
        PaymentRequest("B", Decimal("-1"), plan[0][1], "B-y"),
    ]
    outcomes = post_payments(batch, actor="test", uow=ledger.uow(), chunk_size=3)
    results = [o.result for o in outcomes[:5]]
    assert [r.lines for r in results] == [s.lines for s in singles]
    assert outcomes[5].result.replayed and outcomes[5].result.payment_id == results[0].payment_id
    assert [type(o.error) for o in outcomes[6:]] == [IdempotencyConflict, NotFound, InvalidInput]
    again = post_payments(batch[:5], actor="test", uow=ledger.uow())
    assert all(o.result.replayed for o in again)
    assert _row_counts(ledger)["payments"] == 10
    _assert_clean(ledger)


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "one-connection"])
def test_batch_applies_payments_on_one_loan_in_batch_order_across_chunks(ledger, equal_installment_product, overlap):
    twins = {n: _open(ledger, equal_installment_product, loan_id=f"S{n}", term=6) for n in range(4)}
    for n in range(4):
        _open(ledger, equal_installment_product, loan_id=f"T{n}", term=6)
    plan = [(inst.total, inst.due_date) for inst in twins[0].schedule.installments[:4]]
    singles = {
        n: [_pay(ledger, amount, on, f"S{n}-{k}", loan_id=f"S{n}") for k, (amount, on) in enumerate(plan)]
        for n in range(4)
    }
    # Installment k of every loan, then k + 1: each loan appears in every chunk of two.
    batch = [PaymentRequest(f"T{n}", amount, on, f"T{n}-{k}") for k, (amount, on) in enumerate(plan) for n in range(4)]
    outcomes = post_payments(batch, actor="test", uow=ledger.uow(), chunk_size=2, overlap=overlap)
    by_loan = {n: [o.result for o in outcomes if o.request.loan_id == f"T{n}"] for n in range(4)}
    for n in range(4):
        assert [r.lines for r in by_loan[n]] == [s.lines for s in singles[n]]
        assert not any(r.backdated for r in by_loan[n])
    _assert_clean(ledger)


def test_key_reused_across_chunks_is_posted_by_its_first_occurrence(ledger, equal_installment_product):
    for n in range(6):
        _open(ledger, equal_installment_product, loan_id=f"F{n}")
        _open(ledger, equal_installment_product, loan_id=f"G{n}")
    batch = []
    for n in range(6):
        batch.append(PaymentRequest(f"F{n}", Decimal("50.00"), date(2024, 2, 1), f"K{n}"))
        batch.append(PaymentRequest(f"G{n}", Decimal("60.00"), date(2024, 2, 1), f"K{n}"))
    outcomes = post_payments(batch, actor="test", uow=ledger.uow(), chunk_size=1)
    assert [o.ok for o in outcomes] == [True, False] * 6
    assert all(isinstance(o.error, IdempotencyConflict) for o in outcomes[1::2])
    assert {r.loan_id for r in (o.result for o in outcomes[::2])} == {f"F{n}" for n in range(6)}
    assert _row_counts(ledger)["payments"] == 6
    _assert_clean(ledger)


def test_batch_reports_each_committed_chunk_in_order(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    seen: list[int] = []
    batch = [PaymentRequest("L1", Decimal("10.00"), date(2024, 2, 1), f"p-{k}") for k in range(5)]
    post_payments(batch, actor="test", uow=ledger.uow(), chunk_size=2, progress=seen.append)
    assert seen == [2, 2, 1]


def test_failing_progress_callback_stops_the_batch_and_leaves_the_ledger_clean(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    batch = [PaymentRequest("L1", Decimal("10.00"), date(2024, 2, 1), f"p-{k}") for k in range(6)]

    def refuse(_: int) -> None:
        raise RuntimeError("the caller gave up")

    with pytest.raises(RuntimeError, match="gave up"):
        post_payments(batch, actor="test", uow=ledger.uow(), chunk_size=1, progress=refuse)
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]  # the workers were joined
    assert 1 <= _row_counts(ledger)["payments"] <= 6  # chunks committed before the stop stay posted
    _assert_clean(ledger)


def test_batch_hands_back_the_garbage_collector_as_it_found_it(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    batch = [PaymentRequest("L1", Decimal("10.00"), date(2024, 2, 1), f"p-{k}") for k in range(3)]
    post_payments(batch, actor="test", uow=ledger.uow(), chunk_size=1)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        post_payments(batch, actor="test", uow=ledger.uow(), chunk_size=1)
        assert gc.get_freeze_count() > frozen // 2  # still frozen: not handed back by the batch
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(("loan_id", "key", "field"), [("L\x001", "k", "loan"), ("L1", "k\x00", "idempotency_key")])
def test_control_characters_in_ids_are_refused_before_the_database(
    ledger, equal_installment_product, loan_id, key, field
):
    _open(ledger, equal_installment_product)
    with pytest.raises(InvalidInput) as refused:
        _pay(ledger, "10.00", date(2024, 2, 1), key, loan_id=loan_id)
    assert refused.value.field == field
    assert _row_counts(ledger)["payments"] == 0


# --- concurrency -------------------------------------------------------------------------------------------------

N_PAYMENTS = 2000
N_LOANS = 40
N_PROCESSES = 4


def _worker(url: str, requests: list[tuple[str, str, str, str]], barrier, out) -> None:
    from runoff.app.context import build_context
    from runoff.config import Settings

    ctx = build_context(Settings(workspace=Path("."), database_url=url))
    posted = []
    barrier.wait()
    for loan_id, amount, on, key in requests:
        r = post_payment(
            loan_id, Decimal(amount), value_date=date.fromisoformat(on), idempotency_key=key, actor="w", uow=ctx.uow()
        )
        posted.append((key, r.payment_id, r.replayed))
    ctx.close()
    out.put(posted)


@pytest.mark.slow
def test_concurrent_processes_post_each_key_exactly_once_and_reconcile(ledger, ledger_url, equal_installment_product):
    for n in range(N_LOANS):
        _open(ledger, equal_installment_product, loan_id=f"C{n:03d}", principal="20000.00")
    rng = random.Random(20240615)
    dates = [date(2024, 2, 15), date(2024, 3, 1), date(2024, 3, 15)]
    unique = [
        (
            f"C{rng.randrange(N_LOANS):03d}",
            f"{rng.randint(100, 3000) / 100:.2f}",
            rng.choice(dates).isoformat(),
            f"key-{k}",
        )
        for k in range(N_PAYMENTS * 3 // 4)
    ]
    requests = unique + [rng.choice(unique) for _ in range(N_PAYMENTS - len(unique))]
    rng.shuffle(requests)
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(N_PROCESSES)
    out = mp.Queue()
    share = len(requests) // N_PROCESSES
    procs = [
        mp.Process(target=_worker, args=(ledger_url, requests[k * share : (k + 1) * share], barrier, out))
        for k in range(N_PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    posted = [row for chunk in results for row in chunk]
    assert len(posted) == N_PAYMENTS
    ids_by_key: dict[str, set[int]] = {}
    for key, payment_id, _ in posted:
        ids_by_key.setdefault(key, set()).add(payment_id)
    assert len(ids_by_key) == len(unique)
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    assert sum(1 for _, _, replayed in posted if not replayed) == len(unique)
    with ledger.engine.connect() as conn:
        n_payments, paid = conn.execute(select(func.count(), func.sum(payments.c.amount_fen))).one()
        cash = conn.execute(
            select(func.sum(journal_lines.c.debit_fen - journal_lines.c.credit_fen))
            .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
            .where(journal_entries.c.kind == EntryKind.PAYMENT.value, journal_lines.c.account == "cash_clearing")
        ).scalar_one()
    assert n_payments == len(unique)
    assert paid == cash == sum(int(Decimal(amount) * 100) for _, amount, _, _ in unique)
    _assert_clean(ledger)
