"""Charge-offs (核销) and recoveries (核销后回收): worked examples by hand, idempotency, refusals, the bulk policy.

The worked example: 1,200.00 at 18 % over 3 months from 15 Jan 2024 (ei-18: penalty 0.05 % a day on overdue
principal, order penalty, fee, interest, principal), nothing ever paid. Installments:

    1  15 Feb  principal 394.06  interest 18.00
    2  15 Mar  principal 399.97  interest 12.09
    3  15 Apr  principal 405.97  interest  6.09

Written off as of 13 Aug 2024, 180 days after 15 Feb. Penalty for the days before 13 Aug:
394.06 × 0.05 % × 180 = 35.4654 → 35.47; 399.97 × 0.05 % × 151 = 30.197735 → 30.20;
405.97 × 0.05 % × 120 = 24.3582 → 24.36; in all 90.03.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest
from sqlalchemy import func, select

from runoff.app.charge_offs import write_off, write_off_due, write_off_key
from runoff.app.close_day import close_day
from runoff.app.ledger_check import trial_balance, verify_ledger
from runoff.app.loans import open_loan, read_position
from runoff.app.payments import post_payment
from runoff.app.recoveries import contractual_debt, post_recovery
from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from runoff.money import to_minor as fen_of
from runoff.servicing.product import Component
from runoff.store.ledger.bulk import load_book
from runoff.store.ledger.models import (
    TABLES_IN_LOAD_ORDER,
    LedgerAccount,
    audit_log,
    charge_offs,
    installments,
    journal_entries,
    loans,
    payments,
)

START = date(2024, 1, 15)
AS_OF = date(2024, 8, 13)  # 180 days after the first due date, 15 Feb 2024
D = Decimal


def _open(ctx, product, *, loan_id="L1", principal="1200.00", term=3, start=START):
    return open_loan(
        product=product, principal=principal, term=term, start_date=start, actor="t", uow=ctx.uow(), loan_id=loan_id
    )


def _write_off(ctx, loan_id="L1", *, as_of=AS_OF, reason="180+ days past due", key="w1"):
    return write_off(loan_id, as_of=as_of, reason=reason, idempotency_key=key, actor="t", uow=ctx.uow())


def _recover(ctx, amount, on, key, loan_id="L1"):
    return post_recovery(loan_id, D(amount), value_date=on, idempotency_key=key, actor="t", uow=ctx.uow())


def _pay(ctx, amount, on, key, loan_id="L1"):
    return post_payment(loan_id, D(amount), value_date=on, idempotency_key=key, actor="t", uow=ctx.uow())


def _counts(ctx) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES_IN_LOAD_ORDER}


def _balances(ctx, loan_id=None, as_of=None) -> dict[str, Decimal]:
    fen = trial_balance(uow=ctx.uow(write=False), as_of=as_of, loan_id=loan_id)
    return {a.value: D(v).scaleb(-2) for a, v in fen.items() if v}


def _assert_clean(ctx):
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def _loan(ctx, loan_id="L1"):
    with ctx.engine.connect() as conn:
        return conn.execute(select(loans).where(loans.c.id == loan_id)).mappings().one()


# --- write-off: the worked example ---------------------------------------------------------------------------------


def test_write_off_books_principal_and_penalty_brought_to_the_date_and_keeps_the_contract(
    ledger, equal_installment_product
):
    _open(ledger, equal_installment_product)
    result = _write_off(ledger)
    assert (result.days_past_due, result.principal, result.penalty, result.penalty_charged) == (
        180,
        D("1200.00"),
        D("90.03"),
        D("90.03"),
    )
    assert (result.interest_owed, result.fee_owed, result.written_off, result.contractual_debt) == (
        D("36.18"),
        D("0.00"),
        D("1290.03"),
        D("1326.21"),
    )
    assert not result.replayed
    # Dr penalty_receivable 90.03 / Cr penalty_income 90.03; Dr write_offs 1,290.03 / Cr loans_receivable 1,200.00,
    # Cr penalty_receivable 90.03: the receivables are empty, the loss is in write_offs.
    assert _balances(ledger, "L1") == {
        "cash_clearing": D("-1200.00"),
        "penalty_income": D("90.03"),
        "write_offs": D("1290.03"),
    }
    with ledger.engine.connect() as conn:
        kinds = conn.execute(
            select(journal_entries.c.kind, journal_entries.c.value_date).order_by(journal_entries.c.id)
        ).all()
        row = conn.execute(select(charge_offs)).mappings().one()
        penalties = conn.execute(
            select(installments.c.number, installments.c.penalty_accrued_fen).order_by(installments.c.number)
        ).all()
        audit = conn.execute(select(audit_log.c.action).where(audit_log.c.object_id == "L1")).scalars().all()
    assert kinds == [("disbursement", START), ("penalty_accrual", AS_OF), ("write_off", AS_OF)]
    assert (row["principal_fen"], row["penalty_fen"], row["interest_fen"], row["dpd"]) == (120000, 9003, 3618, 180)
    assert row["entry_id"] == result.entry_id and row["idempotency_key"] == "w1"
    assert penalties == [(1, 3547), (2, 3020), (3, 2436)]
    assert audit[-1] == "loan.charged_off"
    loan = _loan(ledger)
    assert (loan["status"], loan["closed_on"], loan["close_reason"]) == ("charged-off", AS_OF, "charged-off")
    assert (loan["dpd"], loan["bucket"], loan["penalty_accrued_until"]) == (180, "M4+", AS_OF)
    # The contractual debt stays readable: the installments still owe it, for collections.
    assert loan["outstanding_principal_fen"] == 120000
    debt = contractual_debt("L1", uow=ledger.uow(write=False))
    assert (debt.principal, debt.interest, debt.penalty, debt.total) == (
        D("1200.00"),
        D("36.18"),
        D("90.03"),
        D("1326.21"),
    )
    assert (debt.written_off, debt.recovered, debt.charged_off_on) == (D("1290.03"), D("0.00"), AS_OF)
    _assert_clean(ledger)


def test_penalty_paid_before_the_ledgers_history_is_not_taken_back_and_is_not_written_off(
    ledger, equal_installment_product
):
    # A book loaded from a legacy system: installment 1 paid with 50.00 penalty before the ledger's history.
    # The ledger cannot date that payment and would price installment 1's penalty at 0.00; the close keeps
    # the 50.00 paid (never takes paid penalty back), so no installment holds more penalty paid than accrued
    # and the write-off takes off exactly the penalty receivable the journal holds.
    loaded_on = date(2024, 5, 1)
    schedule = _open(ledger, equal_installment_product, loan_id="TMP").schedule
    first = schedule.installments[0]
    loan_frame = pl.DataFrame(
        {"id": ["L1"], "product_id": "ei-18", "principal_fen": [120000], "start_date": [START], "term": [3]}
    )
    inst = pl.DataFrame(
        {
            "loan_id": ["L1"] * 3,
            "number": [1, 2, 3],
            "due_date": [i.due_date for i in schedule.installments],
            "principal_due_fen": [fen_of(i.principal) for i in schedule.installments],
            "interest_due_fen": [fen_of(i.interest) for i in schedule.installments],
            "fee_due_fen": [0, 0, 0],
            "principal_paid_fen": [fen_of(first.principal), 0, 0],
            "interest_paid_fen": [fen_of(first.interest), 0, 0],
            "penalty_accrued_fen": [5000, 0, 0],
            "penalty_paid_fen": [5000, 0, 0],
        }
    )
    with ledger.uow() as uow:
        load_book(
            uow.connection, loans_df=loan_frame, installments_df=inst, products=[equal_installment_product],
            as_of=loaded_on, actor="t", now=uow.now(),
        )  # fmt: skip
        uow.commit()
    close_day(as_of=loaded_on + timedelta(days=1), actor="t", uow=ledger.uow())
    position = read_position("L1", uow=ledger.uow(write=False))
    assert position.installments[0].penalty_accrued == D("50.00")
    assert all(i.outstanding(Component.PENALTY) >= 0 for i in position.installments)
    result = _write_off(ledger, as_of=date(2024, 9, 11))  # 180 days after installment 2 fell due
    receivable = sum(
        (i.outstanding(Component.PENALTY) for i in read_position("L1", uow=ledger.uow(write=False)).installments), D(0)
    )
    assert result.penalty == receivable
    balances = _balances(ledger, "L1")
    assert "penalty_receivable" not in balances and "loans_receivable" not in balances
    _assert_clean(ledger)


def test_write_off_after_the_close_of_the_day_charges_no_more_penalty(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    close_day(as_of=AS_OF, actor="t", uow=ledger.uow())
    result = _write_off(ledger)
    assert (result.penalty, result.penalty_charged) == (D("90.03"), D("0.00"))
    with ledger.engine.connect() as conn:
        accruals = conn.execute(
            select(func.count()).select_from(journal_entries).where(journal_entries.c.kind == "penalty_accrual")
        ).scalar_one()
    assert accruals == 1  # the close's
    _assert_clean(ledger)


def test_a_charged_off_loan_earns_no_more_penalty_and_takes_no_payment(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    _write_off(ledger)
    before = _counts(ledger)
    close_day(as_of=date(2024, 12, 31), actor="t", uow=ledger.uow())
    assert read_position("L1", uow=ledger.uow(write=False)).installments[0].penalty_accrued == D("35.47")
    assert {k: v for k, v in _counts(ledger).items() if k not in ("ledger_closes", "audit_log")} == {
        k: v for k, v in before.items() if k not in ("ledger_closes", "audit_log")
    }
    with pytest.raises(Conflict, match="charged-off"):
        _pay(ledger, "100.00", date(2024, 9, 1), "p-late")
    _assert_clean(ledger)


def test_write_off_of_a_loan_flagged_by_a_backdated_payment_reposts_it_first(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    _open(ledger, equal_installment_product, loan_id="TWIN")
    first = opened.schedule.installments[0]
    _pay(ledger, first.total, first.due_date, "twin-on-time", loan_id="TWIN")
    close_day(as_of=date(2024, 5, 1), actor="t", uow=ledger.uow())
    late = _pay(ledger, first.total, first.due_date, "backdated")  # value 15 Feb, posted after the 1 May close
    assert late.backdated and _loan(ledger)["repost_from"] == first.due_date
    ours = _write_off(ledger, as_of=date(2024, 9, 11))
    twin = _write_off(ledger, "TWIN", as_of=date(2024, 9, 11), key="w-twin")
    # As if the payment had come on time: the same principal and penalty as the loan that paid on time.
    assert (ours.days_past_due, ours.principal, ours.penalty) == (twin.days_past_due, twin.principal, twin.penalty)
    assert ours.days_past_due == 180  # from 15 Mar
    assert _loan(ledger)["repost_from"] is None
    _assert_clean(ledger)


def test_a_loan_refused_after_its_repost_keeps_nothing_of_it(ledger, equal_installment_product):
    """Paid in full by a backdated overpayment: the repost would close the loan, so the write-off is refused and
    the repost is rolled back with it (the loan stays flagged for the next close)."""
    _open(ledger, equal_installment_product)
    close_day(as_of=AS_OF, actor="t", uow=ledger.uow())
    _pay(ledger, "1300.00", date(2024, 2, 15), "backdated")  # covers the whole loan, had it come on 15 Feb
    before = _counts(ledger)
    with pytest.raises(Conflict, match="L1 is closed"):
        _write_off(ledger)
    assert _counts(ledger) == before
    assert _loan(ledger)["repost_from"] == date(2024, 2, 15)
    _assert_clean(ledger)


def test_bulk_policy_checks_dpd_again_after_the_repost_and_rolls_the_repost_back(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    close_day(as_of=AS_OF, actor="t", uow=ledger.uow())
    first = opened.schedule.installments[0]
    # Allocated as the loan stands (penalty first), the payment leaves installment 1 short: 180 days past due.
    _pay(ledger, first.total, first.due_date, "backdated")
    assert _loan(ledger)["oldest_unpaid_due_date"] == first.due_date
    before = _counts(ledger)
    run = write_off_due(min_dpd=180, as_of=AS_OF, actor="t", uow=ledger.uow())
    # Reposted as if on time, installment 1 is paid and the loan is 151 days past due (from 15 Mar).
    ((loan_id, why),) = run.refused
    assert loan_id == "L1" and "151 days past due" in why.message and run.written_off == ()
    assert _counts(ledger) == before
    assert _loan(ledger)["repost_from"] == first.due_date
    _assert_clean(ledger)


# --- idempotency -----------------------------------------------------------------------------------------------------


def test_same_write_off_key_twice_writes_once_and_replays_the_first_result(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    first = _write_off(ledger)
    before = _counts(ledger)
    again = _write_off(ledger)
    assert again.replayed and not first.replayed
    assert again.to_dict() | {"replayed": False} == first.to_dict()
    assert _counts(ledger) == before


@pytest.mark.parametrize(
    ("loan_id", "as_of", "reason"),
    [("L2", AS_OF, "180+ days past due"), ("L1", date(2024, 8, 14), "180+ days past due"), ("L1", AS_OF, "fraud")],
    ids=["other-loan", "other-date", "other-reason"],
)
def test_same_write_off_key_for_something_else_is_refused_naming_the_key(
    ledger, equal_installment_product, loan_id, as_of, reason
):
    _open(ledger, equal_installment_product)
    _open(ledger, equal_installment_product, loan_id="L2")
    _write_off(ledger, key="wk")
    before = _counts(ledger)
    with pytest.raises(IdempotencyConflict, match="'wk'"):
        _write_off(ledger, loan_id, as_of=as_of, reason=reason, key="wk")
    assert _counts(ledger) == before


# --- refusals ------------------------------------------------------------------------------------------------------


def _closed(ctx, product):
    opened = _open(ctx, product)
    for i in opened.schedule.installments:
        _pay(ctx, i.total, i.due_date, f"k{i.number}")


def _charged_off(ctx, product):
    _open(ctx, product)
    _write_off(ctx, key="first")


def _paid_late(ctx, product):
    _open(ctx, product)
    _pay(ctx, "10.00", date(2024, 8, 20), "after")


def _closed_later(ctx, product):
    _open(ctx, product)
    close_day(as_of=date(2024, 8, 20), actor="t", uow=ctx.uow())


def _with_credit(ctx, product):
    _open(ctx, product, term=12)
    _pay(ctx, "150.00", date(2024, 1, 20), "early")  # nothing due yet: all held as credit


def _plain(ctx, product):
    _open(ctx, product)


@pytest.mark.parametrize(
    ("setup", "kwargs", "error", "match"),
    [
        (_plain, {"loan_id": "NOPE"}, NotFound, "loan"),
        (_closed, {}, Conflict, "L1 is closed since 2024-04-15"),
        (_charged_off, {"key": "second"}, Conflict, "L1 is charged-off since 2024-08-13"),
        (_plain, {"as_of": date(2024, 1, 14)}, InvalidInput, "start date"),
        (_paid_late, {}, InvalidInput, "value date of its last payment, 2024-08-20"),
        (_closed_later, {}, InvalidInput, "already accrued to"),
        (_with_credit, {}, Conflict, "150.00 of customer credit"),
        (_plain, {"key": ""}, InvalidInput, "idempotency_key"),
        (_plain, {"key": "k" * 129}, InvalidInput, "idempotency_key"),
        (_plain, {"reason": "  "}, InvalidInput, "reason"),
    ],
    ids=[
        "unknown-loan",
        "closed",
        "charged-off",
        "before-start",
        "before-last-payment",
        "before-last-close",
        "credit-held",
        "empty-key",
        "long-key",
        "no-reason",
    ],
)
def test_write_off_refusals_name_the_problem_and_write_nothing(
    ledger, equal_installment_product, setup, kwargs, error, match
):
    setup(ledger, equal_installment_product)
    before = _counts(ledger)
    with pytest.raises(error, match=match):
        _write_off(ledger, **kwargs)
    assert _counts(ledger) == before
    _assert_clean(ledger)


# --- the bulk policy -----------------------------------------------------------------------------------------------


def _book(ctx, product):
    """OLD: nothing paid (180 DPD on 13 Aug); YOUNG: first installment paid (151 DPD); LATE: paid after 13 Aug."""
    _open(ctx, product, loan_id="OLD")
    young = _open(ctx, product, loan_id="YOUNG")
    first = young.schedule.installments[0]
    _pay(ctx, first.total, first.due_date, "young-1", loan_id="YOUNG")
    _open(ctx, product, loan_id="LATE")
    _pay(ctx, "5.00", date(2024, 8, 20), "late-1", loan_id="LATE")


def test_bulk_write_off_takes_loans_at_the_threshold_and_lists_the_refused(ledger, equal_installment_product):
    _book(ledger, equal_installment_product)
    run = write_off_due(min_dpd=180, as_of=AS_OF, actor="t", uow=ledger.uow())
    assert (run.candidates, run.earlier, run.dry_run) == (2, 0, False)
    assert [r.loan_id for r in run.written_off] == ["OLD"]
    assert run.written_off[0].idempotency_key == write_off_key("OLD", AS_OF) == "write-off:OLD:2024-08-13"
    assert (run.principal, run.penalty) == (D("1200.00"), D("90.03"))
    ((refused_id, why),) = run.refused
    assert refused_id == "LATE" and "last payment" in why.message
    assert {r["id"]: r["status"] for r in map(dict, _rows(ledger, loans))} == {
        "OLD": "charged-off",
        "YOUNG": "open",
        "LATE": "open",
    }
    _assert_clean(ledger)


def test_bulk_write_off_dry_run_reports_the_same_figures_and_writes_nothing(ledger, equal_installment_product):
    _book(ledger, equal_installment_product)
    before = _counts(ledger)
    dry = write_off_due(min_dpd=150, as_of=AS_OF, actor="t", uow=ledger.uow(), dry_run=True)
    assert _counts(ledger) == before
    real = write_off_due(min_dpd=150, as_of=AS_OF, actor="t", uow=ledger.uow())
    assert dry.dry_run and not real.dry_run
    assert [r.to_dict() | {"charge_off_id": 0, "entry_id": 0} for r in dry.written_off] == [
        r.to_dict() | {"charge_off_id": 0, "entry_id": 0} for r in real.written_off
    ]
    assert [r.loan_id for r in real.written_off] == ["OLD", "YOUNG"]
    assert real.written_off[1].days_past_due == 151
    _assert_clean(ledger)


def test_running_the_bulk_write_off_again_writes_nothing_new(ledger, equal_installment_product):
    _book(ledger, equal_installment_product)
    write_off_due(min_dpd=180, as_of=AS_OF, actor="t", uow=ledger.uow())
    before = _counts(ledger)
    again = write_off_due(min_dpd=180, as_of=AS_OF, actor="t", uow=ledger.uow())
    assert (again.candidates, len(again.written_off), again.earlier) == (1, 0, 1)  # LATE, refused again
    assert _counts(ledger) == before
    # The same loan and date give the same key: a single write-off with it replays the bulk's.
    replay = _write_off(ledger, "OLD", reason="180+ days past due as of 2024-08-13", key=write_off_key("OLD", AS_OF))
    assert replay.replayed


def test_bulk_write_off_reports_progress_chunk_by_chunk(ledger, equal_installment_product):
    _book(ledger, equal_installment_product)
    seen: list[tuple[int, int]] = []
    run = write_off_due(
        min_dpd=150, as_of=AS_OF, actor="t", uow=ledger.uow(), chunk_size=2, progress=lambda *a: seen.append(a)
    )
    assert run.candidates == 3 and seen == [(2, 3), (3, 3)]
    _assert_clean(ledger)


def test_bulk_write_off_refuses_a_threshold_below_one(ledger):
    with pytest.raises(InvalidInput, match="min_dpd"):
        write_off_due(min_dpd=0, as_of=AS_OF, actor="t", uow=ledger.uow())


def _rows(ctx, table):
    with ctx.engine.connect() as conn:
        return conn.execute(select(table)).mappings().all()


# --- recoveries ----------------------------------------------------------------------------------------------------


def test_recovery_reduces_the_contractual_debt_in_the_products_order_and_books_recoveries(
    ledger, equal_installment_product
):
    _open(ledger, equal_installment_product)
    _write_off(ledger)
    result = _recover(ledger, "500.00", date(2024, 9, 1), "r1")
    # Installment 1 in full (penalty 35.47, interest 18.00, principal 394.06 = 447.53), then installment 2:
    # penalty 30.20, interest 12.09 and 10.18 of principal.
    assert [(line.number, line.component, line.amount) for line in result.lines] == [
        (1, Component.PENALTY, D("35.47")),
        (1, Component.INTEREST, D("18.00")),
        (1, Component.PRINCIPAL, D("394.06")),
        (2, Component.PENALTY, D("30.20")),
        (2, Component.INTEREST, D("12.09")),
        (2, Component.PRINCIPAL, D("10.18")),
    ]
    assert (result.owed_after, result.fully_recovered) == (D("826.21"), False)
    # Dr cash_clearing 500.00 / Cr recoveries 500.00; the receivables stay written off.
    assert _balances(ledger, "L1") == {
        "cash_clearing": D("-700.00"),
        "penalty_income": D("90.03"),
        "write_offs": D("1290.03"),
        "recoveries": D("500.00"),
    }
    with ledger.engine.connect() as conn:
        row = conn.execute(select(payments)).mappings().one()
    assert (row["kind"], row["status"], row["amount_fen"]) == ("recovery", "posted", 50000)
    loan = _loan(ledger)
    assert loan["outstanding_principal_fen"] == 120000 - 39406 - 1018 and loan["status"] == "charged-off"
    assert loan["dpd"] == 180  # frozen at the charge-off
    debt = contractual_debt("L1", uow=ledger.uow(write=False))
    assert (debt.principal, debt.total, debt.recovered) == (D("795.76"), D("826.21"), D("500.00"))
    _assert_clean(ledger)

    last = _recover(ledger, "826.21", date(2024, 10, 1), "r2")
    assert (last.owed_after, last.fully_recovered) == (D("0.00"), True)
    assert _balances(ledger, "L1")["recoveries"] == D("1326.21")
    _assert_clean(ledger)


def test_same_recovery_key_replays_and_the_key_space_is_the_payments(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    _open(ledger, equal_installment_product, loan_id="L2")
    _pay(ledger, "10.00", date(2024, 2, 1), "pay-1", loan_id="L2")
    _write_off(ledger)
    first = _recover(ledger, "100.00", date(2024, 9, 1), "r1")
    before = _counts(ledger)
    again = _recover(ledger, "100.00", date(2024, 9, 1), "r1")
    assert again.replayed and (again.payment_id, again.lines) == (first.payment_id, first.lines)
    assert _counts(ledger) == before
    with pytest.raises(IdempotencyConflict, match="'r1'"):
        _recover(ledger, "100.01", date(2024, 9, 1), "r1")
    with pytest.raises(IdempotencyConflict, match="'pay-1' was already used for a payment"):
        _recover(ledger, "10.00", date(2024, 9, 1), "pay-1")
    with pytest.raises(IdempotencyConflict, match=r"'r1' was already used for a recovery of 100\.00"):
        _pay(ledger, "100.00", date(2024, 9, 1), "r1")  # the recovery's very request, as a payment
    assert _counts(ledger) == before


def test_a_payment_on_a_charged_off_loan_is_refused_pointing_to_recoveries(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    _write_off(ledger)
    with pytest.raises(Conflict, match="runoff recover"):
        _pay(ledger, "100.00", date(2024, 9, 1), "p-after")


@pytest.mark.parametrize(
    ("loan_id", "amount", "on", "error", "match"),
    [
        ("L1", "1326.22", date(2024, 9, 1), InvalidInput, "more than the 1326.21 loan L1 still owes"),
        ("L1", "10.00", date(2024, 8, 12), InvalidInput, "charged off on 2024-08-13"),
        ("L1", "0", date(2024, 9, 1), InvalidInput, "amount"),
        ("L1", "1.001", date(2024, 9, 1), InvalidInput, "amount"),
        ("OPEN", "10.00", date(2024, 9, 1), Conflict, r"runoff pay"),
        ("NOPE", "10.00", date(2024, 9, 1), NotFound, "loan"),
    ],
    ids=["more-than-owed", "before-charge-off", "zero", "sub-cent", "open-loan", "unknown-loan"],
)
def test_recovery_refusals_name_the_problem_and_write_nothing(
    ledger, equal_installment_product, loan_id, amount, on, error, match
):
    _open(ledger, equal_installment_product)
    _open(ledger, equal_installment_product, loan_id="OPEN")
    _write_off(ledger)
    before = _counts(ledger)
    with pytest.raises(error, match=match):
        post_recovery(loan_id, amount, value_date=on, idempotency_key="r", actor="t", uow=ledger.uow())
    assert _counts(ledger) == before
    _assert_clean(ledger)


def test_trial_balance_of_the_book_balances_after_charge_offs_and_recoveries(ledger, equal_installment_product):
    _book(ledger, equal_installment_product)
    write_off_due(min_dpd=150, as_of=AS_OF, actor="t", uow=ledger.uow())
    _recover(ledger, "300.00", date(2024, 9, 1), "r-old", loan_id="OLD")
    _recover(ledger, "50.00", date(2024, 9, 2), "r-young", loan_id="YOUNG")
    book = trial_balance(uow=ledger.uow(write=False))
    debit_side = sum(v for a, v in book.items() if a in _DEBIT_NATURE)
    credit_side = sum(v for a, v in book.items() if a not in _DEBIT_NATURE)
    assert debit_side == credit_side
    assert book[LedgerAccount.RECOVERIES] == 35000
    _assert_clean(ledger)


_DEBIT_NATURE = {
    LedgerAccount.LOANS_RECEIVABLE,
    LedgerAccount.PENALTY_RECEIVABLE,
    LedgerAccount.CASH_CLEARING,
    LedgerAccount.WAIVERS,
    LedgerAccount.WRITE_OFFS,
}
