"""Payment reversal (冲正 / 退票): the loan ends as if the payment never came, the journal keeps both, refusals write nothing.

Most tests run a loan and its twin through the same steps, the twin without the payment that is reversed, and
compare them after the reversal: installments, the loan's position and every journal balance.

ei-18 over 6 months from 15 Jan 2024 (penalty 0.05 % a day on overdue principal): installments of 210.63,
1: principal 192.63 + interest 18.00, 2: 195.52 + 15.11, 3: 198.45 + 12.18. Over 3 months: 412.06 each,
1: 394.06 + 18.00, 2: 399.97 + 12.09, 3: 405.97 + 6.09.
"""

from __future__ import annotations

import multiprocessing
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from runoff.app.charge_offs import write_off
from runoff.app.close_day import close_day
from runoff.app.ledger_check import trial_balance, verify_ledger
from runoff.app.loans import apply_schedule, open_loan, quote_extension
from runoff.app.payments import post_payment
from runoff.app.recoveries import contractual_debt, post_recovery
from runoff.app.reversals import reverse_payment
from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from runoff.store.ledger.models import (
    TABLES_IN_LOAD_ORDER,
    allocations,
    audit_log,
    installments,
    journal_entries,
    journal_lines,
    loans,
    payments,
)

START = date(2024, 1, 15)
D = Decimal
LOAN_COLUMNS = (
    "status",
    "closed_on",
    "close_reason",
    "credit_balance_fen",
    "outstanding_principal_fen",
    "oldest_unpaid_due_date",
    "dpd",
    "bucket",
    "overdue_principal_fen",
    "overdue_amount_fen",
    "penalty_charged_fen",
    "last_value_date",
    "repost_from",
)


def _open(ctx, product, loan_id="L1", *, term=6, principal="1200.00"):
    return open_loan(
        product=product, principal=principal, term=term, start_date=START, actor="t", uow=ctx.uow(), loan_id=loan_id
    )


def _pay(ctx, amount, on, key, loan_id="L1"):
    return post_payment(loan_id, D(amount), value_date=on, idempotency_key=key, actor="t", uow=ctx.uow())


def _reverse(ctx, payment_id, *, key="rev-1", reason="cheque bounced"):
    return reverse_payment(payment_id, reason=reason, idempotency_key=key, actor="t", uow=ctx.uow())


def _close(ctx, on):
    return close_day(as_of=on, actor="t", uow=ctx.uow())


def _counts(ctx) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES_IN_LOAD_ORDER}


def _assert_clean(ctx):
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def _balances(ctx, loan_id, as_of=None) -> dict[str, Decimal]:
    fen = trial_balance(uow=ctx.uow(write=False), as_of=as_of, loan_id=loan_id)
    return {a.value: D(v).scaleb(-2) for a, v in fen.items() if v}


def _state(ctx, loan_id) -> dict[str, Any]:
    """What a loan is: its live installments, its position columns and its journal balances."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(installments)
            .where(installments.c.loan_id == loan_id)
            .order_by(installments.c.schedule_version, installments.c.number)
        ).mappings()
        inst = [{k: v for k, v in r.items() if k != "loan_id"} for r in rows]
        loan = conn.execute(select(loans).where(loans.c.id == loan_id)).mappings().one()
    return {
        "installments": inst,
        "loan": {c: loan[c] for c in LOAN_COLUMNS},
        "balances": _balances(ctx, loan_id),
    }


def _accrued_until(ctx, loan_id) -> date:
    """The day penalties are accrued to: a marker, not a position (a reversed payment's posting may have moved it
    past the twin's over days that earned nothing)."""
    with ctx.engine.connect() as conn:
        return conn.execute(select(loans.c.penalty_accrued_until).where(loans.c.id == loan_id)).scalar_one()


def _payment_journal_net(ctx, payment_id) -> dict[str, int]:
    """Per account, debits − credits of every entry the payment caused (its mirrors included)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(journal_lines.c.account, func.sum(journal_lines.c.debit_fen - journal_lines.c.credit_fen))
            .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
            .where(journal_entries.c.payment_id == payment_id)
            .group_by(journal_lines.c.account)
        ).all()
    return {account: int(net) for account, net in rows}


# --- the loan ends as if the payment never came ---------------------------------------------------------------------


def test_reversed_late_payment_leaves_the_loan_as_its_twin_that_never_paid_it(ledger, equal_installment_product):
    for loan_id in ("L1", "TWIN"):
        _open(ledger, equal_installment_product, loan_id)
        _pay(ledger, "210.63", date(2024, 2, 15), f"{loan_id}-a", loan_id)
    late = _pay(ledger, "210.63", date(2024, 3, 20), "L1-b")  # 5 days late: 0.49 penalty, 15.11, 195.03
    assert late.penalty_charged == D("0.49")
    _close(ledger, date(2024, 4, 20))

    result = _reverse(ledger, late.payment_id)
    assert (result.kind, result.amount, result.value_date, result.reposted_from) == (
        "payment",
        D("210.63"),
        date(2024, 3, 20),
        date(2024, 3, 20),
    )
    assert (result.entries_reversed, result.allocations_reversed, result.reopened) == (1, 3, False)
    # The twin, by hand as of the 20 Apr close: installment 2 is 36 days late, 195.52 × 0.05 % × 36 = 3.52;
    # installment 3 five days, 198.45 × 0.05 % × 5 = 0.50; principal 1,200.00 − 192.63 = 1,007.37.
    assert (result.loan_status, result.outstanding_principal) == ("open", D("1007.37"))
    ours, twin = _state(ledger, "L1"), _state(ledger, "TWIN")
    assert ours == twin
    assert twin["balances"] == {
        "loans_receivable": D("1007.37"),
        "penalty_receivable": D("4.02"),
        "cash_clearing": D("-989.37"),
        "interest_income": D("18.00"),
        "penalty_income": D("4.02"),
    }
    assert (twin["loan"]["dpd"], twin["loan"]["bucket"]) == (36, "M2")
    assert _accrued_until(ledger, "L1") == _accrued_until(ledger, "TWIN") == date(2024, 4, 20)
    for day in (date(2024, 2, 29), date(2024, 4, 20)):
        assert _balances(ledger, "L1", day)["loans_receivable"] == _balances(ledger, "TWIN", day)["loans_receivable"]
    # The payment nets to nothing in the journal and none of its allocations stands.
    assert set(_payment_journal_net(ledger, late.payment_id).values()) == {0}
    with ledger.engine.connect() as conn:
        row = conn.execute(select(payments).where(payments.c.id == late.payment_id)).mappings().one()
        standing = conn.execute(
            select(func.count())
            .select_from(allocations)
            .where(allocations.c.payment_id == late.payment_id, allocations.c.reversed.is_(False))
        ).scalar_one()
    assert (row["status"], row["reversal_key"], row["reversal_reason"]) == ("reversed", "rev-1", "cheque bounced")
    assert standing == 0
    _assert_clean(ledger)
    # The next close carries on from the same place for both.
    _close(ledger, date(2024, 5, 20))
    assert _state(ledger, "L1") == _state(ledger, "TWIN")
    _assert_clean(ledger)


def test_reversing_the_payment_that_closed_a_loan_reopens_it(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, term=3)
    paid = [_pay(ledger, "412.06", due, f"k{n}") for n, due in enumerate(_dues(3), 1)]
    assert paid[-1].loan_status == "closed"
    result = _reverse(ledger, paid[-1].payment_id)
    assert (result.reopened, result.loan_status, result.outstanding_principal) == (True, "open", D("405.97"))
    # 1,200.00 lent, 824.12 back: 394.06 + 399.97 principal, 18.00 + 12.09 interest.
    assert _balances(ledger, "L1") == {
        "loans_receivable": D("405.97"),
        "cash_clearing": D("-375.88"),
        "interest_income": D("30.09"),
    }
    with ledger.engine.connect() as conn:
        loan = conn.execute(select(loans).where(loans.c.id == "L1")).mappings().one()
        actions = conn.execute(select(audit_log.c.action).order_by(audit_log.c.id)).scalars().all()
    assert (loan["status"], loan["closed_on"], loan["close_reason"]) == ("open", None, None)
    assert loan["last_value_date"] == date(2024, 3, 15)
    assert actions[-3:] == ["loan.reposted", "payment.reversed", "loan.reopened"]
    _assert_clean(ledger)
    # It can be paid again, and closes again.
    again = _pay(ledger, "412.06", date(2024, 4, 15), "k3-again")
    assert again.loan_status == "closed"
    _assert_clean(ledger)


def _dues(term: int) -> list[date]:
    return [date(2024, 1 + n, 15) for n in range(1, term + 1)]


def test_reversing_a_payment_of_a_residual_swept_loan_undoes_the_sweep(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, term=3)
    _open(ledger, equal_installment_product, "TWIN", term=3)
    _pay(ledger, "412.06", date(2024, 2, 15), "k1")
    _pay(ledger, "412.06", date(2024, 3, 15), "k2")
    _pay(ledger, "412.06", date(2024, 2, 15), "t1", "TWIN")
    _pay(ledger, "412.06", date(2024, 3, 15), "t2", "TWIN")
    short = _pay(ledger, "411.50", date(2024, 4, 15), "k3")  # 0.56 short of 412.06: swept and closed
    assert (short.waived, short.loan_status) == (D("0.56"), "closed")
    assert _balances(ledger, "L1")["waivers"] == D("0.56")

    result = _reverse(ledger, short.payment_id)
    assert (result.reopened, result.sweep_undone, result.entries_reversed) == (True, D("0.56"), 2)
    assert _state(ledger, "L1") == _state(ledger, "TWIN")
    assert "waivers" not in _balances(ledger, "L1")
    _assert_clean(ledger)


def test_reversing_an_earlier_payment_of_a_swept_loan_undoes_the_later_sweep(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, term=3)
    _open(ledger, equal_installment_product, "TWIN", term=3)
    _pay(ledger, "412.06", date(2024, 2, 15), "k1")
    second = _pay(ledger, "412.06", date(2024, 3, 15), "k2")
    short = _pay(ledger, "411.50", date(2024, 4, 15), "k3")
    _pay(ledger, "412.06", date(2024, 2, 15), "t1", "TWIN")
    _pay(ledger, "411.50", date(2024, 4, 15), "t3", "TWIN")  # the twin never paid the second

    result = _reverse(ledger, second.payment_id)
    assert (result.reopened, result.sweep_undone, result.loan_status) == (True, D("0.56"), "open")
    assert _state(ledger, "L1") == _state(ledger, "TWIN")
    with ledger.engine.connect() as conn:
        waived = conn.execute(select(payments.c.waived_fen).where(payments.c.id == short.payment_id)).scalar_one()
    assert waived == 0  # the third payment no longer sweeps anything
    _assert_clean(ledger)


def test_reversing_an_overpayment_takes_back_its_credit_and_the_credit_spent(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, term=3)
    _open(ledger, equal_installment_product, "TWIN", term=3)
    over = _pay(ledger, "500.00", date(2024, 2, 15), "k1")  # 412.06 due, 87.94 held as credit
    assert over.credited == D("87.94")
    _close(ledger, date(2024, 3, 20))  # the credit pays installment 2 on 15 Mar
    assert _balances(ledger, "L1")["interest_income"] == D("30.09")

    _reverse(ledger, over.payment_id)
    assert _state(ledger, "L1") == _state(ledger, "TWIN")
    ours = _balances(ledger, "L1")
    assert "customer_credit" not in ours and "interest_income" not in ours
    # Nothing paid, as of 20 Mar: 394.06 × 0.05 % × 34 = 6.70; 399.97 × 0.05 % × 5 = 1.00.
    assert ours["penalty_receivable"] == D("7.70")
    _assert_clean(ledger)


def test_reversing_a_principal_prepayment_restores_the_interest_it_repriced(ledger, flat_fee_product):
    _open(ledger, flat_fee_product, term=6)
    _open(ledger, flat_fee_product, "TWIN", term=6)
    _pay(ledger, "207.20", date(2024, 2, 15), "k1")
    _pay(ledger, "207.20", date(2024, 2, 15), "t1", "TWIN")
    prepay = _pay(ledger, "600.00", date(2024, 2, 20), "k2")
    assert prepay.prepaid_principal == D("600.00")
    with ledger.engine.connect() as conn:
        fees_cut = conn.execute(
            select(func.sum(installments.c.fee_due_fen)).where(installments.c.loan_id == "L1")
        ).scalar_one()
    assert fees_cut < 6 * 720

    _reverse(ledger, prepay.payment_id)
    assert _state(ledger, "L1") == _state(ledger, "TWIN")
    _assert_clean(ledger)


# --- idempotency ---------------------------------------------------------------------------------------------------


def test_same_reversal_key_replays_and_writes_nothing(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    payment = _pay(ledger, "210.63", date(2024, 2, 15), "k1")
    first = _reverse(ledger, payment.payment_id)
    before = _counts(ledger)
    again = _reverse(ledger, payment.payment_id)
    assert again.replayed and not first.replayed
    assert again.to_dict() | {"replayed": False} == first.to_dict()
    assert _counts(ledger) == before


@pytest.mark.parametrize(
    ("other_payment", "reason"),
    [(True, "cheque bounced"), (False, "posted to the wrong loan")],
    ids=["other-payment", "other-reason"],
)
def test_same_reversal_key_for_something_else_is_refused(ledger, equal_installment_product, other_payment, reason):
    _open(ledger, equal_installment_product)
    first = _pay(ledger, "210.63", date(2024, 2, 15), "k1")
    second = _pay(ledger, "210.63", date(2024, 3, 15), "k2")
    _reverse(ledger, first.payment_id, key="rk")
    before = _counts(ledger)
    with pytest.raises(IdempotencyConflict, match="'rk'"):
        _reverse(ledger, second.payment_id if other_payment else first.payment_id, key="rk", reason=reason)
    assert _counts(ledger) == before


# --- refusals ------------------------------------------------------------------------------------------------------


def test_reversal_refusals_name_the_problem_and_write_nothing(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    payment = _pay(ledger, "210.63", date(2024, 2, 15), "k1")
    _reverse(ledger, payment.payment_id, key="first")
    cases = [
        (dict(payment_id=999), NotFound, "no payment 999"),
        (dict(payment_id=payment.payment_id, key="second"), Conflict, "already reversed"),
        (dict(payment_id=0), InvalidInput, "payment"),
        (dict(payment_id=payment.payment_id, key=""), InvalidInput, "idempotency_key"),
        (dict(payment_id=payment.payment_id, key="third", reason=""), InvalidInput, "reason"),
    ]
    before = _counts(ledger)
    for kwargs, error, match in cases:
        payment_id = kwargs.pop("payment_id")
        with pytest.raises(error, match=match):
            _reverse(ledger, payment_id, **kwargs)
        assert _counts(ledger) == before
    _assert_clean(ledger)


def test_a_payment_on_a_charged_off_loan_is_not_reversed_and_the_message_says_what_to_do(
    ledger, equal_installment_product
):
    _open(ledger, equal_installment_product)
    payment = _pay(ledger, "210.63", date(2024, 2, 15), "k1")
    write_off("L1", as_of=date(2024, 9, 11), reason="180+", idempotency_key="w", actor="t", uow=ledger.uow())
    before = _counts(ledger)
    with pytest.raises(Conflict, match="Only recoveries can be reversed on a charged-off loan"):
        _reverse(ledger, payment.payment_id)
    assert _counts(ledger) == before


def test_a_payment_under_an_archived_schedule_is_not_reversed(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    payment = _pay(ledger, "210.63", date(2024, 2, 15), "k1")
    quote = quote_extension("L1", as_of=date(2024, 2, 20), extra_periods=3, uow=ledger.uow(write=False))
    apply_schedule("L1", quote.schedule, reason="extension", actor="t", uow=ledger.uow())
    before = _counts(ledger)
    with pytest.raises(Conflict, match="reverse the re-schedule first"):
        _reverse(ledger, payment.payment_id)
    assert _counts(ledger) == before


# --- recoveries ----------------------------------------------------------------------------------------------------


def test_reversing_a_recovery_puts_the_debt_back_and_keeps_the_other_recoveries(ledger, equal_installment_product):
    _open(ledger, equal_installment_product, term=3)
    write_off("L1", as_of=date(2024, 8, 13), reason="180+", idempotency_key="w", actor="t", uow=ledger.uow())
    owed = contractual_debt("L1", uow=ledger.uow(write=False)).total
    assert owed == D("1326.21")
    first = post_recovery(
        "L1", "500.00", value_date=date(2024, 9, 1), idempotency_key="r1", actor="t", uow=ledger.uow()
    )
    post_recovery("L1", "100.00", value_date=date(2024, 9, 2), idempotency_key="r2", actor="t", uow=ledger.uow())

    result = _reverse(ledger, first.payment_id, reason="agency remittance bounced")
    assert (result.kind, result.reposted_from, result.entries_reversed, result.allocations_reversed) == (
        "recovery",
        None,
        1,
        6,
    )
    assert result.loan_status == "charged-off"
    debt = contractual_debt("L1", uow=ledger.uow(write=False))
    assert (debt.total, debt.recovered) == (D("1226.21"), D("100.00"))
    assert _balances(ledger, "L1") == {
        "cash_clearing": D("-1100.00"),
        "penalty_income": D("90.03"),
        "write_offs": D("1290.03"),
        "recoveries": D("100.00"),
    }
    assert set(_payment_journal_net(ledger, first.payment_id).values()) == {0}
    _assert_clean(ledger)
    # The debt it freed can be recovered again.
    post_recovery("L1", "1226.21", value_date=date(2024, 10, 1), idempotency_key="r3", actor="t", uow=ledger.uow())
    assert contractual_debt("L1", uow=ledger.uow(write=False)).total == 0
    _assert_clean(ledger)


# --- concurrency -------------------------------------------------------------------------------------------------


def _reverse_worker(url: str, requests: list[tuple[int, str]], barrier, out) -> None:
    from runoff.app.context import build_context
    from runoff.config import Settings

    ctx = build_context(Settings(workspace=Path("."), database_url=url))
    done = []
    barrier.wait()
    for payment_id, key in requests:
        try:
            r = reverse_payment(payment_id, reason="race", idempotency_key=key, actor="w", uow=ctx.uow())
            done.append((payment_id, key, "replayed" if r.replayed else "reversed"))
        except Conflict as exc:
            done.append((payment_id, key, type(exc).__name__))
    ctx.close()
    out.put(done)


@pytest.mark.slow
def test_concurrent_reversals_reverse_each_payment_once(ledger, ledger_url, equal_installment_product):
    """Four processes race to reverse the same payments, each with its own key and with a key they share:
    every payment is reversed exactly once, the shared key replays, the other keys are refused."""
    ids = []
    for n in range(6):
        _open(ledger, equal_installment_product, f"R{n}")
        ids.append(_pay(ledger, "210.63", date(2024, 2, 15), f"p{n}", f"R{n}").payment_id)
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(4)
    out = mp.Queue()
    plans = [[(pid, f"shared-{pid}") if w % 2 else (pid, f"w{w}-{pid}") for pid in ids] for w in range(4)]
    procs = [mp.Process(target=_reverse_worker, args=(ledger_url, plan, barrier, out)) for plan in plans]
    for p in procs:
        p.start()
    results = [row for _ in procs for row in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for pid in ids:
        outcomes = [outcome for payment_id, _, outcome in results if payment_id == pid]
        assert outcomes.count("reversed") == 1, outcomes
        assert set(outcomes) <= {"reversed", "replayed", "Conflict", "IdempotencyConflict"}
    with ledger.engine.connect() as conn:
        reversed_keys = conn.execute(select(payments.c.reversal_key).where(payments.c.status == "reversed")).scalars()
        assert len(set(reversed_keys)) == len(ids)
    _assert_clean(ledger)
