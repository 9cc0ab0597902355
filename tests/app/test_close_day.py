"""The daily close: DPD and buckets, penalties equal to servicing's to the fen, catch-up, idempotence, reposts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from runoff.app.close_day import close_day
from runoff.app.context import AppContext, build_context
from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import balance_as_of, open_loan, read_position
from runoff.app.payments import post_payment
from runoff.config import Settings
from runoff.errors import Conflict, InvalidInput
from runoff.servicing.delinquency import Bucket, bucket_of, days_past_due, penalty_due_to_date
from runoff.servicing.product import Component, Product, parse_product
from runoff.store.ledger.database import create_ledger_engine, upgrade_to_head
from runoff.store.ledger.models import (
    TABLES_IN_LOAD_ORDER,
    LedgerAccount,
    allocations,
    audit_log,
    journal_entries,
    ledger_closes,
    loans,
)
from tests.conftest import PostgresSchema, postgres_admin_url

START = date(2024, 1, 15)  # installments fall due on the 15th, from 2024-02-15
D = Decimal


def _product(pid: str, **penalty: object) -> Product:
    body: dict[str, object] = {"id": pid, "method": "equal-installment", "annual_rate": "0.18", "terms": [3, 6, 12]}
    if penalty:
        body["penalty"] = penalty
    return parse_product(body, source="test")


PRODUCTS = {
    "principal": _product("pen-principal"),  # 0.05 %/day on overdue principal
    "amount-grace": _product("pen-amount", base="overdue-amount", daily_rate="0.0007", grace_days=3),
    "capped": _product("pen-capped", daily_rate="0.01", cap_rate_of_principal="0.01"),  # binds within weeks
    "half-even": parse_product(
        {
            "id": "pen-even",
            "method": "equal-principal",
            "annual_rate": "0.12",
            "terms": [6],
            "rounding": {"mode": "half-even"},
            "penalty": {"daily_rate": "0.00033", "cap_rate_of_principal": "0.5"},
        },
        source="test",
    ),
}

# (loan, product, principal, term, payments as (value date, amount))
BOOK = [
    ("on-time", "principal", "1200.00", 12, [(date(2024, 2, 15), "110.02"), (date(2024, 3, 15), "110.02")]),
    ("never", "principal", "1200.00", 12, []),
    ("partial", "principal", "1200.00", 12, [(date(2024, 2, 20), "50.00"), (date(2024, 3, 2), "30.00")]),
    ("late-catch-up", "amount-grace", "600.00", 6, [(date(2024, 3, 1), "120.00"), (date(2024, 3, 20), "250.00")]),
    ("grace", "amount-grace", "900.00", 6, [(date(2024, 2, 17), "40.00")]),
    ("capped", "capped", "1200.00", 12, [(date(2024, 3, 5), "20.00")]),
    ("even", "half-even", "777.77", 6, [(date(2024, 2, 29), "33.33")]),
]
FIRST_CLOSE = date(2024, 2, 10)
LAST_CLOSE = date(2024, 4, 3)


def _open_book(ctx: AppContext) -> None:
    for loan_id, product, principal, term, _ in BOOK:
        open_loan(
            product=PRODUCTS[product],
            principal=principal,
            term=term,
            start_date=START,
            actor="test",
            uow=ctx.uow(),
            loan_id=loan_id,
        )


def _payments_on(day: date) -> list[tuple[str, str, str]]:
    return [
        (loan_id, amount, f"{loan_id}-{k}")
        for loan_id, *_, paid in BOOK
        for k, (on, amount) in enumerate(paid)
        if on == day
    ]


def _pay(ctx: AppContext, loan_id: str, amount: str, on: date, key: str) -> None:
    post_payment(loan_id, D(amount), value_date=on, idempotency_key=key, actor="test", uow=ctx.uow())


def _run(ctx: AppContext, close_dates: list[date]) -> None:
    """Payments on their value dates, then the closes given: a payment dated d is posted before the close of d."""
    day = FIRST_CLOSE
    while day <= close_dates[-1]:
        for loan_id, amount, key in _payments_on(day):
            _pay(ctx, loan_id, amount, day, key)
        if day in close_dates:
            close_day(as_of=day, actor="test", uow=ctx.uow())
        day += timedelta(days=1)


def _every_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _assert_clean(ctx: AppContext) -> None:
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def _loan_row(ctx: AppContext, loan_id: str) -> dict[str, object]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(loans).where(loans.c.id == loan_id)).mappings().one())


def _assert_matches_servicing(ctx: AppContext, as_of: date) -> None:
    """Every loan's penalty, DPD and bucket are what the pure servicing functions say as of ``as_of``."""
    for loan_id, *_ in BOOK:
        position = read_position(loan_id, uow=ctx.uow(write=False))
        expected = {c.number: c.amount for c in penalty_due_to_date(position, as_of)}
        assert {i.number: i.penalty_accrued for i in position.installments} == expected, loan_id
        row = _loan_row(ctx, loan_id)
        dpd = days_past_due(position, as_of)
        assert (row["dpd"], row["bucket"]) == (dpd, bucket_of(dpd).value), loan_id
        assert row["penalty_charged_fen"] == sum(int(a * 100) for a in expected.values()), loan_id
        balances = balance_as_of(loan_id, as_of, uow=ctx.uow(write=False))
        owed = sum((i.outstanding(Component.PENALTY) for i in position.installments), D(0))
        assert balances[LedgerAccount.PENALTY_RECEIVABLE] == owed, loan_id


@pytest.fixture
def twin(ledger_url: str, tmp_path: Path, fixed_clock: object) -> Iterator[AppContext]:
    """A second empty ledger on the same kind of database as ``ledger``."""

    def context(url: str, folder: Path) -> AppContext:
        engine = create_ledger_engine(url)
        upgrade_to_head(engine)
        engine.dispose()
        return build_context(Settings(workspace=folder, database_url=url), clock=fixed_clock)  # type: ignore[arg-type]

    if ledger_url.startswith("sqlite"):
        ctx = context(f"sqlite:///{tmp_path / 'twin.db'}", tmp_path / "twin")
        yield ctx
        ctx.close()
        return
    admin = postgres_admin_url()
    assert admin is not None
    with PostgresSchema(admin) as url:
        ctx = context(url, tmp_path / "twin")
        yield ctx
        ctx.close()


# --- DPD and buckets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (date(2024, 2, 15), {"never": (0, Bucket.CURRENT), "partial": (0, Bucket.CURRENT)}),
        (date(2024, 2, 16), {"never": (1, Bucket.M1), "partial": (1, Bucket.M1), "on-time": (0, Bucket.CURRENT)}),
        (date(2024, 3, 16), {"never": (30, Bucket.M1), "on-time": (0, Bucket.CURRENT)}),
        (date(2024, 3, 17), {"never": (31, Bucket.M2), "grace": (31, Bucket.M2)}),
        (
            date(2024, 4, 3),
            {"never": (48, Bucket.M2), "late-catch-up": (0, Bucket.CURRENT), "partial": (48, Bucket.M2)},
        ),
    ],
    ids=["due-day-is-not-late", "one-day-late", "30-days-is-M1", "31-days-is-M2", "after-catching-up"],
)
def test_close_sets_dpd_and_bucket_from_the_oldest_unpaid_installment(ledger, as_of, expected):
    _open_book(ledger)
    _run(ledger, _every_day(FIRST_CLOSE, as_of))
    for loan_id, (dpd, bucket) in expected.items():
        row = _loan_row(ledger, loan_id)
        assert (row["dpd"], row["bucket"]) == (dpd, bucket.value), loan_id
        if dpd:  # the close reads and writes only loans with something overdue
            assert row["last_closed_on"] == as_of
    _assert_matches_servicing(ledger, as_of)


def test_loan_that_catches_up_goes_back_to_current_at_the_next_close(ledger):
    _open_book(ledger)
    _run(ledger, _every_day(FIRST_CLOSE, date(2024, 3, 19)))
    assert _loan_row(ledger, "late-catch-up")["bucket"] == Bucket.M1.value
    close_day(as_of=date(2024, 3, 20), actor="test", uow=ledger.uow())
    assert _loan_row(ledger, "late-catch-up")["bucket"] == Bucket.M1.value
    # paid on 03-20 but posted after that day's close: not backdated (penalty runs for days before 03-20)
    _pay(ledger, "late-catch-up", "250.00", date(2024, 3, 20), "late-catch-up-1")
    assert _loan_row(ledger, "late-catch-up")["repost_from"] is None
    result = close_day(as_of=date(2024, 3, 21), actor="test", uow=ledger.uow())
    row = _loan_row(ledger, "late-catch-up")
    assert (row["dpd"], row["bucket"], row["overdue_amount_fen"]) == (0, Bucket.CURRENT.value, 0)
    assert result.by_bucket[Bucket.CURRENT.value]["loans"] >= 1


# --- penalties -----------------------------------------------------------------------------------------------------


def test_penalty_after_daily_closes_equals_penalty_due_to_date_to_the_fen(ledger):
    _open_book(ledger)
    _run(ledger, _every_day(FIRST_CLOSE, LAST_CLOSE))
    _assert_matches_servicing(ledger, LAST_CLOSE)
    capped = read_position("capped", uow=ledger.uow(write=False))
    assert sum(i.penalty_accrued for i in capped.installments) == D("12.00")  # the 1 % cap binds
    _assert_clean(ledger)


def test_catch_up_over_many_days_equals_closing_every_day(ledger, twin):
    for ctx in (ledger, twin):
        _open_book(ctx)
    _run(ledger, _every_day(FIRST_CLOSE, LAST_CLOSE))
    _run(twin, [FIRST_CLOSE, date(2024, 2, 28), date(2024, 3, 19), LAST_CLOSE])  # gaps of 18, 20 and 15 days
    _assert_matches_servicing(twin, LAST_CLOSE)
    for loan_id, *_ in BOOK:
        daily, caught_up = (read_position(loan_id, uow=ctx.uow(write=False)) for ctx in (ledger, twin))
        assert [i.penalty_accrued for i in caught_up.installments] == [i.penalty_accrued for i in daily.installments]
        assert balance_as_of(loan_id, LAST_CLOSE, uow=twin.uow(write=False)) == balance_as_of(
            loan_id, LAST_CLOSE, uow=ledger.uow(write=False)
        )
    _assert_clean(twin)


def test_credit_balance_pays_the_installment_falling_due_at_the_close(ledger, equal_installment_product):
    opened = open_loan(
        product=equal_installment_product,
        principal="1200.00",
        term=12,
        start_date=START,
        actor="test",
        uow=ledger.uow(),
        loan_id="C",
    )
    first, second = opened.schedule.installments[:2]
    _pay(ledger, "C", str(first.total + D("150.00")), first.due_date, "over")  # 150.00 held as credit
    close_day(as_of=second.due_date, actor="test", uow=ledger.uow())
    position = read_position("C", uow=ledger.uow(write=False))
    assert position.credit_balance == D("150.00") - second.total == D("39.98")
    assert position.installments[1].principal_paid + position.installments[1].interest_paid == second.total
    assert _loan_row(ledger, "C")["bucket"] == Bucket.CURRENT.value
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(allocations.c.source == "credit")).scalar_one() == 2
    result = close_day(as_of=second.due_date + timedelta(days=1), actor="test", uow=ledger.uow())
    assert (result.delinquent_loans, result.penalty_fen) == (0, 0)  # the credit covered it in full
    _assert_clean(ledger)


# --- idempotence and direction ---------------------------------------------------------------------------------------


def _snapshot(ctx: AppContext) -> dict[str, list[tuple[object, ...]]]:
    with ctx.engine.connect() as conn:
        return {
            t.name: sorted(tuple(map(str, r)) for r in conn.execute(select(t)))
            for t in TABLES_IN_LOAD_ORDER
            if t is not audit_log
        }


def test_closing_the_same_day_twice_changes_nothing_the_second_time(ledger):
    _open_book(ledger)
    _run(ledger, _every_day(FIRST_CLOSE, date(2024, 3, 10)))
    before = _snapshot(ledger)
    again = close_day(as_of=date(2024, 3, 10), actor="test", uow=ledger.uow())
    assert again.already_closed
    assert _snapshot(ledger) == before


def test_forced_rerun_of_the_last_day_posts_no_penalty_twice(ledger):
    _open_book(ledger)
    _run(ledger, _every_day(FIRST_CLOSE, date(2024, 3, 10)))
    with ledger.engine.connect() as conn:
        entries = conn.execute(select(func.count()).select_from(journal_entries)).scalar_one()
    rerun = close_day(as_of=date(2024, 3, 10), actor="test", uow=ledger.uow(), allow_backwards=True)
    assert (rerun.already_closed, rerun.penalty_fen, rerun.entries) == (False, 0, 0)
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(journal_entries)).scalar_one() == entries
    _assert_matches_servicing(ledger, date(2024, 3, 10))


def test_close_before_the_last_close_is_refused_unless_asked(ledger):
    _open_book(ledger)
    _run(ledger, [FIRST_CLOSE, date(2024, 3, 10)])
    with pytest.raises(Conflict, match="`as_of`: 2024-03-01 is before the last close 2024-03-10"):
        close_day(as_of=date(2024, 3, 1), actor="test", uow=ledger.uow())
    back = close_day(as_of=date(2024, 3, 1), actor="test", uow=ledger.uow(), allow_backwards=True)
    assert back.penalty_fen == 0  # penalty is never taken back by a close run backwards
    assert _loan_row(ledger, "never")["dpd"] == 15


def test_chunk_size_must_be_positive(ledger):
    with pytest.raises(InvalidInput, match="`chunk_size`: 0"):
        close_day(as_of=FIRST_CLOSE, actor="test", uow=ledger.uow(), chunk_size=0)


def test_close_writes_its_log_row_and_an_audit_entry(ledger):
    _open_book(ledger)
    _run(ledger, _every_day(FIRST_CLOSE, date(2024, 2, 20)))
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(ledger_closes).order_by(ledger_closes.c.id)).mappings().all()
        audited = conn.execute(select(func.count()).where(audit_log.c.action == "ledger.closed")).scalar_one()
    assert [r["status"] for r in rows] == ["done"] * 11
    assert rows[-1]["as_of"] == date(2024, 2, 20)
    assert rows[-1]["penalties_accrued_fen"] > 0
    assert audited == 11


# --- backdated payments ----------------------------------------------------------------------------------------------


def test_backdated_payment_reposts_that_loan_only_and_verify_stays_clean(ledger):
    _open_book(ledger)
    _run(ledger, _every_day(FIRST_CLOSE, date(2024, 3, 10)))
    with ledger.engine.connect() as conn:
        others_before = {
            loan_id: conn.execute(
                select(func.count()).where(allocations.c.loan_id == loan_id, allocations.c.reversed.is_(True))
            ).scalar_one()
            for loan_id, *_ in BOOK
        }
    # "never" pays installment 1 with value date 02-20, learnt after the close of 03-10.
    _pay(ledger, "never", "110.02", date(2024, 2, 20), "late-news")
    assert _loan_row(ledger, "never")["repost_from"] == date(2024, 2, 20)
    _assert_clean(ledger)
    result = close_day(as_of=date(2024, 3, 11), actor="test", uow=ledger.uow())
    assert result.reposted == 1
    assert _loan_row(ledger, "never")["repost_from"] is None
    _assert_matches_servicing(ledger, date(2024, 3, 11))
    _assert_clean(ledger)
    with ledger.engine.connect() as conn:
        for loan_id, before in others_before.items():
            if loan_id != "never":
                reversed_now = conn.execute(
                    select(func.count()).where(allocations.c.loan_id == loan_id, allocations.c.reversed.is_(True))
                ).scalar_one()
                assert reversed_now == before, loan_id
        touched = conn.execute(
            select(journal_entries.c.loan_id).where(journal_entries.c.reverses_entry_id.is_not(None)).distinct()
        ).scalars()
        assert set(touched) == {"never"}


def test_balances_as_of_past_dates_after_a_repost_read_as_if_the_payment_had_been_on_time(ledger, twin):
    late_value = date(2024, 2, 20)
    for ctx in (ledger, twin):
        _open_book(ctx)
    # twin learns of the payment on its value date; ledger only after the close of 03-10
    day = FIRST_CLOSE
    while day <= date(2024, 3, 10):
        for ctx in (ledger, twin):
            for loan_id, amount, key in _payments_on(day):
                _pay(ctx, loan_id, amount, day, key)
        if day == late_value:
            _pay(twin, "never", "110.02", late_value, "late-news")
        for ctx in (ledger, twin):
            close_day(as_of=day, actor="test", uow=ctx.uow())
        day += timedelta(days=1)
    _pay(ledger, "never", "110.02", late_value, "late-news")
    for ctx in (ledger, twin):
        close_day(as_of=date(2024, 3, 11), actor="test", uow=ctx.uow())
    for past in (date(2024, 2, 15), date(2024, 2, 19), late_value, date(2024, 2, 29), date(2024, 3, 11)):
        assert balance_as_of("never", past, uow=ledger.uow(write=False)) == balance_as_of(
            "never", past, uow=twin.uow(write=False)
        ), past
    reposted, on_time = (read_position("never", uow=ctx.uow(write=False)) for ctx in (ledger, twin))
    assert reposted.installments == on_time.installments
    _assert_clean(ledger)
