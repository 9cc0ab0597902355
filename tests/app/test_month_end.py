"""Month-end snapshots from the ledger: a hand-built book whose every column is worked out by hand, on both databases.

The book went live on 2024-01-31: its loans table and its January month end are the book's own (as the
generator or a tape import writes them); February is the ledger's first month end. Two products, so every
amount is a round figure: a 0.6 %/month flat fee (1200.00 over 3 months is 400.00 principal + 7.20 fee a month)
and an interest-free equal-principal loan (400.00 a month). Both charge 0.05 %/day on overdue principal:
0.20 a day on one missed 400.00.

====  ======================  ==========================================================  ==========================
loan  product, start          what happens                                                February's row
====  ======================  ==========================================================  ==========================
101   flat fee, 2024-01-15    pays installment 1 (407.20) on 02-15                        current, 800.00 left
102   flat fee, 2024-01-15    pays nothing                                                M1, 14 days, 2.80 penalty
103   zero rate, 2024-01-15   pays 400.00 on 02-15, then 800.00 on 02-20: the loan closes  early-settled
104   flat fee, 2023-11-15    pays every installment on its due date, the last on 02-15    paid-off
105   flat fee, 2023-10-15    pays nothing; written off on 02-20                          charged-off, 106 days
106   flat fee, 2024-01-15    as 102 in February; pays 410.00 on 03-05                    M1 (the March payment is
                                                                                          taken back out)
107   flat fee, 2024-01-15    ledger id ``X-107``: not a loan of the book                 no row, counted
108   zero rate, 2023-10-15   paid off on 2024-01-15                                      no row (closed before)
====  ======================  ==========================================================  ==========================

Loans 105 and 106 live in the book's partition 1, the others in partition 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select

from runoff.app.assess import book_analytics
from runoff.app.book import generate_book, load_ledger
from runoff.app.charge_offs import write_off
from runoff.app.close_day import close_day
from runoff.app.context import AppContext
from runoff.app.loans import Arrears, apply_schedule, open_loan, quote_extension, quote_restructure
from runoff.app.month_end import (
    _snapshot_lock,
    ledger_month_end,
    ledger_months,
    snapshot_after_close,
    snapshot_month_end,
)
from runoff.app.payments import post_payment
from runoff.errors import Conflict, InvalidInput, NotFound
from runoff.portfolio.generator import BookConfig
from runoff.portfolio.schemas import LOANS, PERFORMANCE
from runoff.servicing.product import Product, parse_product
from runoff.store.ledger.models import LedgerAccount, journal_lines
from runoff.store.workspace import Workspace

GO_LIVE = date(2024, 1, 31)
FEB = date(2024, 2, 29)
MAR = date(2024, 3, 31)

FLAT = parse_product(
    {
        "id": "flat-06",
        "method": "flat-fee",
        "fee_rate": "0.006",
        "terms": [3],
        "allocation": {"overpayment": "prepay-principal"},
    },
    source="test",
)
ZERO = parse_product(
    {"id": "zero-rate", "method": "equal-principal", "annual_rate": "0", "terms": [3],
     "allocation": {"overpayment": "prepay-principal"}},
    source="test",
)  # fmt: skip


@dataclass(frozen=True)
class HandLoan:
    book_id: int
    ledger_id: str
    product: Product
    start: date
    partition: int
    january: dict[str, Any] | None  # the book's own 2024-01-31 row (None: no row)


def _first_due(start: date) -> date:
    return date(start.year + start.month // 12, start.month % 12 + 1, start.day)


def _jan(mob: int, bucket: str = "current", dpd: int = 0, balance: int = 120_000, **more: int) -> dict[str, Any]:
    status = {"closed": "paid-off"}.get(bucket, "active")
    return {"mob": mob, "status": status, "bucket": bucket, "dpd": dpd, "principal_balance_fen": balance, **more}


LOANS_BY_HAND = (
    HandLoan(101, "101", FLAT, date(2024, 1, 15), 0, _jan(0)),
    HandLoan(102, "102", FLAT, date(2024, 1, 15), 0, _jan(0)),
    HandLoan(103, "103", ZERO, date(2024, 1, 15), 0, _jan(0)),
    HandLoan(104, "104", FLAT, date(2023, 11, 15), 0, _jan(2, balance=40_000)),
    HandLoan(105, "105", FLAT, date(2023, 10, 15), 1, _jan(3, "M3", 77, overdue_principal_fen=120_000)),
    HandLoan(106, "106", FLAT, date(2024, 1, 15), 1, _jan(0)),
    HandLoan(107, "X-107", FLAT, date(2024, 1, 15), 0, None),
    HandLoan(108, "108", ZERO, date(2023, 10, 15), 0, _jan(3, "closed", balance=0, paid_principal_fen=40_000)),
)
BOOK_LOANS = [h for h in LOANS_BY_HAND if h.ledger_id.isdigit()]


def write_book(root: Path) -> Workspace:
    """The book as it stood at go-live: its loans table and its own January month end, in two partitions."""
    ws = Workspace.init(root)
    for part in (0, 1):
        mine = [h for h in BOOK_LOANS if h.partition == part]
        loans = pl.DataFrame(
            {
                "loan_id": [h.book_id for h in mine],
                "account_id": [h.book_id * 10 for h in mine],
                "customer_id": [h.book_id * 10 for h in mine],
                "product_id": [h.product.id for h in mine],
                "method": [h.product.method.value for h in mine],
                "term_months": [3] * len(mine),
                "annual_rate": [None if h.product is FLAT else 0.0 for h in mine],
                "fee_rate": [0.006 if h.product is FLAT else None for h in mine],
                "principal_fen": [120_000] * len(mine),
                "originated_on": [h.start for h in mine],
                "first_due_on": [_first_due(h.start) for h in mine],
                "maturity_on": [
                    date(h.start.year + (h.start.month + 2) // 12, (h.start.month + 2) % 12 + 1, 15) for h in mine
                ],
                "vintage": [h.start.strftime("%Y-%m") for h in mine],
                "status": ["paid-off" if h.book_id == 108 else "active" for h in mine],
                "closed_on": [date(2024, 1, 15) if h.book_id == 108 else None for h in mine],
            },
            schema_overrides={"annual_rate": pl.Float64, "fee_rate": pl.Float64, "closed_on": pl.Date},
        )
        ws.write_partition("loans", part, LOANS.conform(loans))
        rows = []
        for h in mine:
            assert h.january is not None
            row = dict.fromkeys(PERFORMANCE.names, 0) | {"loan_id": h.book_id, "customer_id": h.book_id * 10}
            rows.append(row | {"month_end": GO_LIVE, "installments_remaining": 0} | h.january)
        ws.write_partition("performance", part, PERFORMANCE.conform(pl.DataFrame(rows)))
    return ws


def run_february(ctx: AppContext, *, close_february: bool = True) -> None:
    """The ledger's life from the loans' start to the close of 2024-02-29 (chronological: closes move forward)."""

    def pay(loan: str, amount: str, day: date) -> None:
        post_payment(loan, Decimal(amount), value_date=day, idempotency_key=f"{loan}-{day}", actor="t", uow=ctx.uow())

    for h in LOANS_BY_HAND:
        open_loan(
            product=h.product, principal="1200.00", term=3, start_date=h.start, actor="t", uow=ctx.uow(),
            loan_id=h.ledger_id, customer_id=str(h.book_id * 10), account_id=str(h.book_id * 10),
        )  # fmt: skip
    for day in (date(2023, 11, 15), date(2023, 12, 15), date(2024, 1, 15)):
        pay("108", "400.00", day)
    for day in (date(2023, 12, 15), date(2024, 1, 15)):
        pay("104", "407.20", day)
    close_day(as_of=GO_LIVE, actor="t", uow=ctx.uow())
    pay("101", "407.20", date(2024, 2, 15))
    pay("103", "400.00", date(2024, 2, 15))
    pay("104", "407.20", date(2024, 2, 15))
    pay("103", "800.00", date(2024, 2, 20))
    write_off("105", as_of=date(2024, 2, 20), reason="test", idempotency_key="wo-105", actor="t", uow=ctx.uow())
    if close_february:
        close_day(as_of=FEB, actor="t", uow=ctx.uow())


@pytest.fixture
def book(ledger: AppContext, tmp_path: Path) -> tuple[Workspace, AppContext]:
    ws = write_book(tmp_path)
    run_february(ledger)
    return ws, ledger


def _month(ws: Workspace, day: date) -> dict[int, dict[str, Any]]:
    rows = ws.scan("performance").filter(pl.col("month_end") == day).collect()
    return {r["loan_id"]: r for r in rows.iter_rows(named=True)}


# February, worked out by hand (fen). Penalty: 0.05 %/day of 400.00 is 20 fen a day.
FEBRUARY = {
    # 101: installment 1 paid on its due date; two left.
    101: dict(mob=1, status="active", bucket="current", dpd=0, principal_balance_fen=80_000, overdue_principal_fen=0,
              overdue_amount_fen=0, due_fen=40_720, paid_principal_fen=40_000, paid_interest_fen=0, paid_fee_fen=720,
              paid_penalty_fen=0, penalty_charged_fen=0, charged_off_fen=0, installments_remaining=2),
    # 102: installment 1 (due 02-15) unpaid: 14 days at 02-29; penalty for 02-15..02-28 = 14 × 20 = 280.
    102: dict(mob=1, status="active", bucket="M1", dpd=14, principal_balance_fen=120_000,
              overdue_principal_fen=40_000, overdue_amount_fen=40_720 + 280, due_fen=40_720, paid_principal_fen=0,
              paid_interest_fen=0, paid_fee_fen=0, paid_penalty_fen=0, penalty_charged_fen=280, charged_off_fen=0,
              installments_remaining=3),
    # 103: 02-20's 800.00 prepaid installments 3 and 2, beyond the next due date (03-15): settled early.
    103: dict(mob=1, status="early-settled", bucket="closed", dpd=0, principal_balance_fen=0,
              overdue_principal_fen=0, overdue_amount_fen=0, due_fen=40_000, paid_principal_fen=120_000,
              paid_interest_fen=0, paid_fee_fen=0, paid_penalty_fen=0, penalty_charged_fen=0, charged_off_fen=0,
              installments_remaining=0),
    # 104: the last installment paid on its due date: repaid on schedule.
    104: dict(mob=3, status="paid-off", bucket="closed", dpd=0, principal_balance_fen=0, overdue_principal_fen=0,
              overdue_amount_fen=0, due_fen=40_720, paid_principal_fen=40_000, paid_interest_fen=0, paid_fee_fen=720,
              paid_penalty_fen=0, penalty_charged_fen=0, charged_off_fen=0, installments_remaining=0),
    # 105: 97 days past due when written off on 02-20 (oldest due 2023-11-15), 106 at 02-29; the write-off
    # brought penalty on 1200.00 overdue from 01-31 to 02-19: 20 days × 60 = 1200.
    105: dict(mob=4, status="charged-off", bucket="charged-off", dpd=106, principal_balance_fen=0,
              overdue_principal_fen=0, overdue_amount_fen=0, due_fen=0, paid_principal_fen=0, paid_interest_fen=0,
              paid_fee_fen=0, paid_penalty_fen=0, penalty_charged_fen=1_200, charged_off_fen=120_000,
              installments_remaining=0),
    106: dict(mob=1, status="active", bucket="M1", dpd=14, principal_balance_fen=120_000,
              overdue_principal_fen=40_000, overdue_amount_fen=41_000, due_fen=40_720, paid_principal_fen=0,
              paid_interest_fen=0, paid_fee_fen=0, paid_penalty_fen=0, penalty_charged_fen=280, charged_off_fen=0,
              installments_remaining=3),
}  # fmt: skip


def test_every_column_of_the_first_ledger_month_is_what_the_hand_computation_says(book):
    ws, ctx = book
    result = snapshot_month_end(ws, ctx, as_of=FEB)
    rows = _month(ws, FEB)
    assert sorted(rows) == sorted(FEBRUARY)  # 107 is not the book's, 108 closed in January
    for loan_id, expected in FEBRUARY.items():
        got = {k: rows[loan_id][k] for k in expected}
        assert got == expected, loan_id
        assert rows[loan_id]["customer_id"] == loan_id * 10
    assert (result.rows, result.replaced_rows, result.partitions) == (6, 0, (0, 1))
    assert (result.not_in_book, result.not_in_book_sample) == (1, ("X-107",))
    assert result.by_status == {"active": 3, "paid-off": 1, "early-settled": 1, "charged-off": 1}
    assert result.by_bucket["M1"] == {"loans": 2, "principal_fen": 240_000}


def test_the_month_lands_in_the_partition_that_holds_each_loan_and_keeps_the_book_months(book):
    ws, ctx = book
    snapshot_month_end(ws, ctx, as_of=FEB)
    for part, ids in ((0, {101, 102, 103, 104}), (1, {105, 106})):
        frame = ws.read_partition("performance", part)
        assert PERFORMANCE.violations(frame) == []
        assert set(frame.filter(pl.col("month_end") == FEB).get_column("loan_id")) == ids
        assert frame.filter(pl.col("month_end") == GO_LIVE).height == len(ids) + (part == 0)  # 108's January row
        assert frame.equals(frame.sort("loan_id", "month_end"))


def test_principal_balances_add_up_to_the_books_receivable_at_the_month_end(book):
    ws, ctx = book
    snapshot_month_end(ws, ctx, as_of=FEB)
    jl = journal_lines
    with ctx.uow(write=False) as uow:
        receivable = uow.connection.execute(
            select(func.sum(jl.c.debit_fen - jl.c.credit_fen)).where(
                jl.c.account == LedgerAccount.LOANS_RECEIVABLE.value, jl.c.value_date <= FEB, jl.c.loan_id != "X-107"
            )
        ).scalar_one()
    assert sum(r["principal_balance_fen"] for r in _month(ws, FEB).values()) == receivable == 320_000


def test_a_rerun_replaces_the_month_and_later_postings_are_taken_back_out(book):
    ws, ctx = book
    snapshot_month_end(ws, ctx, as_of=FEB)
    first = _month(ws, FEB)
    # March: 106 pays its arrears and penalty, the close of 03-05 accrues and moves everything on.
    post_payment(
        "106", Decimal("410.00"), value_date=date(2024, 3, 5), idempotency_key="106-mar", actor="t", uow=ctx.uow()
    )
    close_day(as_of=date(2024, 3, 5), actor="t", uow=ctx.uow())
    again = snapshot_month_end(ws, ctx, as_of=FEB)
    assert (again.rows, again.replaced_rows) == (6, 6)
    assert _month(ws, FEB) == first
    assert ws.scan("performance").filter(pl.col("month_end") == FEB).collect().height == 6
    assert ledger_months(ws)["2024-02"]["status"] == "done"


def test_a_re_schedule_after_the_month_end_leaves_the_month_as_it_was(book):
    ws, ctx = book
    snapshot_month_end(ws, ctx, as_of=FEB)
    first = _month(ws, FEB)
    when = date(2024, 3, 5)
    haircut = quote_restructure("102", as_of=when, term=6, haircut=Decimal("0.25"), uow=ctx.uow(write=False))
    apply_schedule("102", haircut.schedule, reason="restructure", actor="t", uow=ctx.uow(), as_of=when)
    longer = quote_extension("106", as_of=when, extra_periods=3, uow=ctx.uow(write=False))
    due = longer.due_now
    carried = Arrears(when, interest=due.interest, fee=due.fee, penalty=due.penalty)
    apply_schedule("106", longer.schedule, reason="extension", actor="t", uow=ctx.uow(), carried=carried, as_of=when)
    close_day(as_of=MAR, actor="t", uow=ctx.uow())
    snapshot_month_end(ws, ctx, as_of=FEB)
    assert _month(ws, FEB) == first
    snapshot_month_end(ws, ctx, as_of=MAR)
    march = _month(ws, MAR)
    assert march[102]["principal_balance_fen"] == 90_000  # 1200.00 less the 25 % haircut
    assert march[106]["installments_remaining"] == len(longer.schedule.installments) + 1  # and the arrears carried


def test_a_day_within_the_month_is_replaced_by_the_month_end_itself(book):
    ws, ctx = book
    close_day(as_of=date(2024, 3, 10), actor="t", uow=ctx.uow())
    early = snapshot_month_end(ws, ctx, as_of=date(2024, 3, 10), any_day=True)
    assert early.rows == 3  # 101, 102 and 106; 103, 104 and 105 left the book in February
    close_day(as_of=MAR, actor="t", uow=ctx.uow())
    end = snapshot_month_end(ws, ctx, as_of=MAR)
    assert end.replaced_rows == 3 and end.rows == 3
    march = ws.scan("performance").filter(pl.col("month_end").dt.month() == 3).collect()
    assert set(march.get_column("month_end")) == {MAR}
    assert _month(ws, MAR)[102]["dpd"] == 45 and _month(ws, MAR)[102]["bucket"] == "M2"


def test_refusals_name_what_is_wrong_and_write_nothing(book):
    ws, ctx = book
    before = ws.scan("performance").collect()
    with pytest.raises(
        InvalidInput, match=r"2024-02-28 is not a month end; expected the last day of its month \(2024-02-29\)"
    ):
        snapshot_month_end(ws, ctx, as_of=date(2024, 2, 28))
    with pytest.raises(Conflict, match=r"daily close of 2024-03-31 has not been run \(last close: 2024-02-29\)"):
        snapshot_month_end(ws, ctx, as_of=MAR)
    with pytest.raises(Conflict, match=r"holds the book's own rows for 2024-01"):
        snapshot_month_end(ws, ctx, as_of=GO_LIVE)
    with pytest.raises(Conflict, match=r"2023-12 is before the book's own months \(up to 2024-01\)"):
        snapshot_month_end(ws, ctx, as_of=date(2023, 12, 31))
    with pytest.raises(NotFound, match="no book in"):
        snapshot_month_end(Workspace.init(ws.root / "empty"), ctx, as_of=FEB)
    assert ws.scan("performance").collect().equals(before)
    assert ledger_months(ws) == {}


def test_one_snapshot_at_a_time_per_workspace(book):
    ws, ctx = book
    with _snapshot_lock(ws), pytest.raises(Conflict, match="another month-end snapshot is writing") as busy:
        snapshot_month_end(ws, ctx, as_of=FEB)
    assert busy.value.code == "month_end.busy"
    assert snapshot_month_end(ws, ctx, as_of=FEB).rows == 6  # the lock went with the first


def test_after_the_close_of_a_month_end_the_snapshot_is_written_and_the_go_live_month_is_skipped(book):
    ws, ctx = book
    assert snapshot_after_close(ctx, as_of=date(2024, 2, 20)) is None  # not a month end
    go_live = snapshot_after_close(ctx, as_of=GO_LIVE)
    assert go_live is not None and go_live.status == "skipped" and "book's own rows" in (go_live.reason or "")
    written = snapshot_after_close(ctx, as_of=FEB)
    assert written is not None and written.status == "written" and written.result is not None
    assert written.result.rows == 6 == len(_month(ws, FEB))


def test_roll_rates_read_the_ledgers_month_after_the_books_own(book):
    ws, ctx = book
    snapshot_month_end(ws, ctx, as_of=FEB)
    analytics = book_analytics(ws, metrics=("transitions",), dimensions=())
    assert analytics.as_of == FEB
    rolls = {
        r["from_bucket"]: r for r in analytics.roll_rates().filter(pl.col("month_end") == GO_LIVE).iter_rows(named=True)
    }
    current = rolls["current"]  # 101 stays, 102 and 106 roll to M1, 103 prepaid, 104 paid off
    assert (current["from_loans"], current["stay_loans"], current["roll_forward_loans"]) == (5, 1, 2)
    assert (current["prepaid_loans"], current["paid_off_loans"]) == (1, 1)
    assert current["roll_forward_count_rate"] == pytest.approx(2 / 5)
    assert current["collected_fen"] == 40_720 + 120_000 + 40_720  # 101, 103 and 104 in February
    m3 = rolls["M3"]  # 105, written off
    assert (m3["from_loans"], m3["charged_off_loans"], m3["charged_off_fen"]) == (1, 1, 120_000)


def test_the_ledgers_reading_of_the_go_live_month_matches_the_generators_own_rows(ledger, tmp_path):
    """The same definitions on both sides: a generated book loaded into the ledger, read back at its last month end.

    Penalty is the one difference the ledger owns: its close charges the days before the close date, the
    generator the days to the month end, so the close of the go-live day takes back the difference; the
    overdue amount differs by exactly what it took back.
    """
    ws = Workspace.init(tmp_path)
    generate_book(ws, BookConfig(customers=2000, months=4, seed=3))
    loaded = load_ledger(ws, ledger)
    took_back = -close_day(as_of=loaded.as_of, actor="t", uow=ledger.uow()).penalty_fen
    with ledger.engine.connect() as conn, conn.begin():
        rows, _ = ledger_month_end(conn, loaded.as_of)
    generated = ws.scan("performance").filter(pl.col("month_end") == loaded.as_of).collect()
    both = generated.filter(pl.col("status") == "active").join(
        rows.with_columns(pl.col("ledger_id").cast(pl.Int64).alias("loan_id")), on="loan_id", how="full", suffix="_l"
    )
    assert both.height == rows.height == loaded.loans > 1000
    for column in ("mob", "status", "bucket", "dpd", "principal_balance_fen", "overdue_principal_fen",
                   "installments_remaining", "due_fen"):  # fmt: skip
        assert both.filter(pl.col(column) != pl.col(f"{column}_l")).height == 0, column
    gap = both.select((pl.col("overdue_amount_fen") - pl.col("overdue_amount_fen_l")).sum()).item()
    assert gap == took_back > 0
