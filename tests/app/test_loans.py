"""Loans in the ledger: opening atomically, quotes, re-scheduling with archived versions, and its reversal."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import (
    Arrears,
    apply_schedule,
    balance_as_of,
    open_loan,
    quote_extension,
    quote_restructure,
    quote_settlement,
    read_position,
    reverse_reschedule,
    show_loan,
)
from runoff.app.payments import post_payment
from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from runoff.servicing.product import parse_product
from runoff.store.ledger.models import (
    TABLES_IN_LOAD_ORDER,
    LedgerAccount,
    audit_log,
    installments,
    journal_entries,
    schedule_versions,
)

START = date(2024, 1, 15)


def _open(ctx, product, *, loan_id="L1", principal="1200.00", term=12):
    return open_loan(
        product=product, principal=principal, term=term, start_date=START, actor="test", uow=ctx.uow(), loan_id=loan_id
    )


def _counts(ctx):
    with ctx.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES_IN_LOAD_ORDER}


def _clean(ctx):
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def _receivable(ctx, loan_id="L1", on=date(2099, 1, 1)):
    return balance_as_of(loan_id, on, uow=ctx.uow(write=False))[LedgerAccount.LOANS_RECEIVABLE]


def test_opening_a_loan_writes_schedule_disbursement_and_audit_atomically(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    assert len(opened.schedule.installments) == 12
    counts = _counts(ledger)
    assert (counts["loans"], counts["schedule_versions"], counts["installments"]) == (1, 1, 12)
    assert _receivable(ledger) == Decimal("1200.00")
    assert balance_as_of("L1", date(2024, 1, 14), uow=ledger.uow(write=False))[LedgerAccount.LOANS_RECEIVABLE] == 0
    with ledger.engine.connect() as conn:
        assert conn.execute(select(audit_log.c.action, audit_log.c.object_id)).all() == [("loan.opened", "L1")]
    _clean(ledger)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"term": 7}, InvalidInput, "term"),
        ({"principal": "0.50"}, InvalidInput, "principal"),
        ({"principal": "2000000.00"}, InvalidInput, "principal"),
        ({"principal": "100.001"}, InvalidInput, "principal"),
        ({"loan_id": "EXISTING"}, Conflict, "loan"),
    ],
    ids=["term-not-offered", "below-minimum", "above-maximum", "sub-cent", "duplicate-id"],
)
def test_bad_loan_is_refused_and_writes_nothing(ledger, equal_installment_product, kwargs, error, field):
    _open(ledger, equal_installment_product, loan_id="EXISTING")
    before = _counts(ledger)
    args = {"loan_id": "NEW", "principal": "1200.00", "term": 12, **kwargs}
    with pytest.raises(error, match=field):
        _open(ledger, equal_installment_product, **args)
    assert _counts(ledger) == before


def test_capitalising_grace_books_the_added_interest_as_principal_on_its_day(ledger):
    product = parse_product(
        {
            "id": "grace-cap",
            "method": "equal-installment",
            "annual_rate": "0.12",
            "terms": [6],
            "grace_periods": 2,
            "grace_kind": "capitalize",
        }
    )
    opened = _open(ledger, product, term=6, principal="1000.00")
    capitalized = opened.schedule.total_capitalized
    assert capitalized > 0
    assert _receivable(ledger) == Decimal("1000.00") + capitalized
    before_grace_ends = opened.schedule.installments[0].due_date
    assert _receivable(ledger, on=before_grace_ends) == Decimal("1000.00") + opened.schedule.installments[0].capitalized
    _clean(ledger)


def test_quotes_price_from_the_ledger_and_write_nothing(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    before = _counts(ledger)
    settle = quote_settlement("L1", as_of=date(2024, 1, 15), uow=ledger.uow(write=False))
    assert settle.due_now.total == Decimal("1200.00")  # settling on the drawing date costs the principal
    extension = quote_extension("L1", as_of=date(2024, 3, 1), extra_periods=6, uow=ledger.uow(write=False))
    assert len(extension.schedule.installments) == 18 - 1  # 11 not yet due + 6
    assert _counts(ledger) == before


def test_extension_archives_the_old_version_and_carries_arrears_due_now(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    as_of = date(2024, 3, 1)  # installment 1 (15 Feb) is overdue: its interest stays due now
    quote = quote_extension("L1", as_of=as_of, extra_periods=6, uow=ledger.uow(write=False))
    due = quote.due_now
    change = apply_schedule(
        "L1",
        quote.schedule,
        reason="extension",
        actor="test",
        uow=ledger.uow(),
        idempotency_key="ext-1",
        carried=Arrears(as_of, interest=due.interest, fee=due.fee, penalty=due.penalty),
        as_of=as_of,
    )
    assert (change.version, change.previous_version, change.replayed) == (2, 1, False)
    with ledger.engine.connect() as conn:
        versions = conn.execute(select(schedule_versions.c.version, schedule_versions.c.archived_at.is_not(None))).all()
        kept = conn.execute(
            select(func.count()).select_from(installments).where(installments.c.schedule_version == 1)
        ).scalar_one()
    assert sorted(versions) == [(1, True), (2, False)]
    assert kept == 12  # the archived version's installments stay
    position = read_position("L1", uow=ledger.uow(write=False))
    assert position.schedule_version == 2
    carried = [i for i in position.installments if i.number == 0]
    assert carried and carried[0].interest_due == due.interest and carried[0].due_date == as_of
    assert position.outstanding_principal == Decimal("1200.00")
    _clean(ledger)


def test_restructure_haircut_is_a_waiver_and_the_receivable_follows(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    as_of = date(2024, 4, 1)
    quote = quote_restructure(
        "L1", as_of=as_of, term=24, haircut=Decimal("0.25"), uow=ledger.uow(write=False), capitalize_overdue=True
    )
    assert quote.forgiven_principal == Decimal("300.00")
    overdue = quote_restructure("L1", as_of=as_of, term=24, uow=ledger.uow(write=False)).due_now
    apply_schedule(
        "L1",
        quote.schedule,
        reason="restructure",
        actor="test",
        uow=ledger.uow(),
        as_of=as_of,
        capitalized_interest=overdue.interest,
        capitalized_fee=overdue.fee,
    )
    balances = balance_as_of("L1", as_of, uow=ledger.uow(write=False))
    assert balances[LedgerAccount.WAIVERS] == Decimal("300.00")
    assert balances[LedgerAccount.LOANS_RECEIVABLE] == quote.schedule.principal
    assert balances[LedgerAccount.INTEREST_INCOME] == quote.capitalized  # overdue interest capitalised
    _clean(ledger)


def test_penalty_not_carried_is_waived_and_carried_penalty_becomes_a_fee_due_now(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    i1 = opened.schedule.installments[0]
    late = date(2024, 4, 1)
    post_payment("L1", Decimal("10.00"), value_date=late, idempotency_key="late", actor="t", uow=ledger.uow())
    quote = quote_restructure("L1", as_of=late, term=12, uow=ledger.uow(write=False))
    assert quote.due_now.penalty > 0
    due = quote.due_now
    apply_schedule(
        "L1",
        quote.schedule,
        reason="restructure",
        actor="test",
        uow=ledger.uow(),
        carried=Arrears(late, interest=due.interest, fee=due.fee, penalty=due.penalty),
        as_of=late,
    )
    position = read_position("L1", uow=ledger.uow(write=False))
    (carried,) = [i for i in position.installments if i.number == 0]
    assert carried.fee_due == due.fee + due.penalty
    assert balance_as_of("L1", late, uow=ledger.uow(write=False))[LedgerAccount.PENALTY_RECEIVABLE] == 0
    assert i1.due_date < late
    _clean(ledger)


def test_reschedule_is_refused_when_a_payment_moved_the_loan_after_its_quote(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    basis = read_position("L1", uow=ledger.uow(write=False))
    quote = quote_extension("L1", as_of=START, extra_periods=3, uow=ledger.uow(write=False))
    post_payment("L1", Decimal("300.00"), value_date=date(2024, 2, 1), idempotency_key="p", actor="t", uow=ledger.uow())
    before = _counts(ledger)
    with pytest.raises(Conflict, match="changed after it was quoted") as refused:
        apply_schedule("L1", quote.schedule, reason="extension", actor="t", uow=ledger.uow(), basis=basis)
    assert refused.value.field == "loan"
    assert _counts(ledger) == before
    fresh = read_position("L1", uow=ledger.uow(write=False))
    requote = quote_extension("L1", as_of=date(2024, 2, 1), extra_periods=3, uow=ledger.uow(write=False))
    change = apply_schedule("L1", requote.schedule, reason="extension", actor="t", uow=ledger.uow(), basis=fresh)
    assert change.version == 2
    _clean(ledger)


def test_same_reschedule_key_replays_and_another_loan_is_refused(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    _open(ledger, equal_installment_product, loan_id="L2")
    quote = quote_extension("L1", as_of=START, extra_periods=3, uow=ledger.uow(write=False))
    first = apply_schedule("L1", quote.schedule, reason="extension", actor="t", uow=ledger.uow(), idempotency_key="k")
    again = apply_schedule("L1", quote.schedule, reason="extension", actor="t", uow=ledger.uow(), idempotency_key="k")
    assert again.replayed and again.version == first.version == 2
    before = _counts(ledger)
    with pytest.raises(IdempotencyConflict, match="'k'"):
        apply_schedule("L2", quote.schedule, reason="extension", actor="t", uow=ledger.uow(), idempotency_key="k")
    assert _counts(ledger) == before


def test_reversing_a_reschedule_restores_the_parent_and_every_past_balance(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    as_of = date(2024, 4, 1)
    dates = [START, date(2024, 3, 1), as_of, date(2025, 6, 1)]
    before = {d: balance_as_of("L1", d, uow=ledger.uow(write=False)) for d in dates}
    quote = quote_restructure("L1", as_of=as_of, term=24, haircut=Decimal("0.10"), uow=ledger.uow(write=False))
    apply_schedule("L1", quote.schedule, reason="restructure", actor="t", uow=ledger.uow(), as_of=as_of)
    change = reverse_reschedule("L1", 2, actor="t", uow=ledger.uow())
    assert (change.version, change.previous_version) == (1, 2)
    assert read_position("L1", uow=ledger.uow(write=False)).schedule_version == 1
    after = {d: balance_as_of("L1", d, uow=ledger.uow(write=False)) for d in dates}
    assert after == before
    with ledger.engine.connect() as conn:
        kinds = sorted(conn.execute(select(journal_entries.c.kind)).scalars())
    assert kinds.count("reversal") == kinds.count("reschedule") == 1  # the journal keeps both
    _clean(ledger)


def test_reschedule_cannot_be_reversed_once_a_payment_is_allocated_under_it(ledger, equal_installment_product):
    _open(ledger, equal_installment_product)
    quote = quote_extension("L1", as_of=START, extra_periods=3, uow=ledger.uow(write=False))
    apply_schedule("L1", quote.schedule, reason="extension", actor="t", uow=ledger.uow())
    first_due = quote.schedule.installments[0]
    post_payment("L1", first_due.total, value_date=first_due.due_date, idempotency_key="p", actor="t", uow=ledger.uow())
    before = _counts(ledger)
    with pytest.raises(Conflict, match="allocated"):
        reverse_reschedule("L1", 2, actor="t", uow=ledger.uow())
    assert _counts(ledger) == before
    _clean(ledger)


@pytest.mark.parametrize(
    ("version", "error", "message"),
    [(1, Conflict, "original"), (3, NotFound, "no schedule version 3")],
    ids=["original-version", "unknown-version"],
)
def test_only_the_live_rescheduled_version_can_be_reversed(ledger, equal_installment_product, version, error, message):
    _open(ledger, equal_installment_product)
    with pytest.raises(error, match=message):
        reverse_reschedule("L1", version, actor="t", uow=ledger.uow())


def test_closed_loan_cannot_be_quoted_or_rescheduled(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product, term=3)
    for inst in opened.schedule.installments:
        post_payment(
            "L1", inst.total, value_date=inst.due_date, idempotency_key=f"k{inst.number}", actor="t", uow=ledger.uow()
        )
    with pytest.raises(Conflict, match="closed"):
        quote_settlement("L1", as_of=date(2024, 5, 1), uow=ledger.uow(write=False))
    with pytest.raises(Conflict, match="closed"):
        apply_schedule("L1", opened.schedule, reason="x", actor="t", uow=ledger.uow())


def test_show_loan_reads_days_past_due_as_of_any_date(ledger, equal_installment_product):
    opened = _open(ledger, equal_installment_product)
    i1 = opened.schedule.installments[0]
    # 10 days late: the penalty is paid first, so bring a little more than the installment.
    late = post_payment(
        "L1",
        i1.total + Decimal("10.00"),
        value_date=date(2024, 2, 25),
        idempotency_key="late",
        actor="t",
        uow=ledger.uow(),
    )
    assert late.penalty_charged > 0
    on = {
        d: show_loan("L1", as_of=d, uow=ledger.uow(write=False))
        for d in (date(2024, 2, 15), date(2024, 2, 20), date(2024, 2, 26))
    }
    assert [v.days_past_due for v in on.values()] == [0, 5, 0]
    assert on[date(2024, 2, 20)].bucket.value == "M1"


def test_unknown_loan_is_not_found(ledger):
    with pytest.raises(NotFound, match="NOPE"):
        balance_as_of("NOPE", START, uow=ledger.uow(write=False))
    with pytest.raises(NotFound, match="NOPE"):
        read_position("NOPE", uow=ledger.uow(write=False))
