"""Posting a payment file: every row posted, replayed or refused with its row and reason; nothing silently dropped."""

from __future__ import annotations

import csv
import hashlib
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select

from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import open_loan
from runoff.app.payment_file import (
    COLUMNS,
    REFUSAL_COLUMNS,
    PaymentFileInterrupted,
    PaymentFileInvalid,
    default_refusals_path,
    parse_rows,
    post_payment_file,
    read_payment_file,
)
from runoff.app.payments import post_payment
from runoff.errors import InvalidInput
from runoff.store.ledger.database import create_ledger_engine
from runoff.store.ledger.models import (
    allocations,
    audit_log,
    installments,
    journal_entries,
    journal_lines,
    loans,
    payments,
)
from runoff.store.ledger.unit_of_work import UnitOfWork

START = date(2024, 1, 15)
DUE = "2024-02-15"


def _open(ctx, product, loan_id, *, term=12):
    return open_loan(
        product=product, principal="1200.00", term=term, start_date=START, actor="test", uow=ctx.uow(), loan_id=loan_id
    )


def _write(path: Path, rows, header=COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


WRITTEN_BY_PAYMENTS = (payments, allocations, journal_entries, journal_lines, audit_log)


def _row_counts(ctx) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in WRITTEN_BY_PAYMENTS}


def _file_runs(ctx) -> list[dict]:
    """The details of each payment_file.processed audit row, oldest first."""
    with ctx.engine.connect() as conn:
        query = select(audit_log.c.details).where(audit_log.c.action == "payment_file.processed")
        return [r[0] for r in conn.execute(query.order_by(audit_log.c.id))]


def _positions(ctx) -> list[tuple]:
    """Every loan and installment row as stored: a replay must not even touch them."""
    with ctx.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(loans).order_by(loans.c.id))]
        order = (installments.c.loan_id, installments.c.schedule_version, installments.c.number)
        return rows + [tuple(r) for r in conn.execute(select(installments).order_by(*order))]


def _assert_clean(ctx):
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def _read_refusals(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def book(ledger, equal_installment_product):
    """Loans L1, L2 (12 months) and L3 (3 months) from 15 Jan 2024; L1 paid 50.00 (key `old`), L2 100.00 (`used`)."""
    _open(ledger, equal_installment_product, "L1")
    _open(ledger, equal_installment_product, "L2")
    short = _open(ledger, equal_installment_product, "L3", term=3)
    post_payment("L1", "50.00", value_date=date(2024, 2, 15), idempotency_key="old", actor="test", uow=ledger.uow())
    post_payment("L2", "100.00", value_date=date(2024, 2, 15), idempotency_key="used", actor="test", uow=ledger.uow())
    return short.schedule.installments


def _daily_file(tmp_path: Path, l3_installments) -> Path:
    i1, i2, i3 = l3_installments
    rows = [
        ["L1", "110.00", DUE, "k1"],  # 1 posted
        ["L2", "110.00", DUE, "k2"],  # 2 posted
        ["L1", "110.00", DUE, "k1"],  # 3 replayed: repeated in the file
        ["L1", "50.00", DUE, "old"],  # 4 replayed: posted before the file
        ["L2", "99.00", DUE, "used"],  # 5 refused: key posted before for 100.00
        ["NOPE", "10.00", DUE, "k6"],  # 6 refused: unknown loan
        ["L1", "abc", DUE, "k7"],  # 7 refused: amount not a number
        ["L1", "10.001", DUE, "k8"],  # 8 refused: more than 2 decimals
        ["L1", "0", DUE, "k9"],  # 9 refused: not more than zero
        ["L1", "-5.00", DUE, "k10"],  # 10 refused: negative
        ["L1", "10.00", "2024/02/15", "k11"],  # 11 refused: not YYYY-MM-DD
        ["L1", "10.00", "2024-02-30", "k12"],  # 12 refused: no such day
        ["L1", "10.00", DUE, ""],  # 13 refused: empty key
        ["L1", "", DUE, "k14"],  # 14 refused: empty amount
        ["", "", "", ""],  # 15 refused: blank row
        ["L3", str(i1.total), i1.due_date.isoformat(), "L3-1"],  # 16 posted
        ["L3", str(i2.total), i2.due_date.isoformat(), "L3-2"],  # 17 posted
        ["L3", str(i3.total), i3.due_date.isoformat(), "L3-3"],  # 18 posted: closes L3
        ["L3", "10.00", i3.due_date.isoformat(), "L3-4"],  # 19 refused: L3 is closed
        ["L1", "10.00", "2024-01-14", "k20"],  # 20 refused: before the loan's start
        [" L2 ", " 1,000.00 ", f" {DUE} ", " k21 "],  # 21 posted: spaces trimmed, thousands separator
    ]
    return _write(tmp_path / "2024-02-15.csv", rows)


EXPECTED_REFUSALS = {
    5: ("payment.idempotency_conflict", "idempotency_key", "'used'"),
    6: ("not_found", "loan_id", "NOPE"),
    7: ("input.invalid", "amount", "not a number"),
    8: ("input.invalid", "amount", "more than two decimals"),
    9: ("input.invalid", "amount", "more than zero"),
    10: ("input.invalid", "amount", "more than zero"),
    11: ("input.invalid", "value_date", "YYYY-MM-DD"),
    12: ("input.invalid", "value_date", "YYYY-MM-DD"),
    13: ("input.invalid", "idempotency_key", "empty"),
    14: ("input.invalid", "amount", "empty"),
    15: ("input.invalid", None, "blank row"),
    19: ("conflict", "loan_id", "L3"),
    20: ("input.invalid", "value_date", "before loan L1's start"),
}


@pytest.mark.parametrize("chunk_size", [1000, 2], ids=["one-chunk", "chunks-of-2"])
def test_each_row_is_posted_replayed_or_refused_with_its_row_and_reason(ledger, book, tmp_path, chunk_size):
    path = _daily_file(tmp_path, book)
    result = post_payment_file(path, actor="ops", uow=ledger.uow(), chunk_size=chunk_size)

    assert (result.read, result.posted, result.replayed, result.refused) == (21, 6, 2, 13)
    l3_total = sum((i.total for i in book), Decimal("0"))
    assert result.amount_posted == Decimal("110.00") * 2 + l3_total + Decimal("1000.00")
    assert result.loans_closed == ("L3",)
    got = {r.row: (r.code, r.field) for r in result.refusals}
    assert got == {row: (code, field) for row, (code, field, _) in EXPECTED_REFUSALS.items()}
    for refusal in result.refusals:
        assert EXPECTED_REFUSALS[refusal.row][2] in refusal.message
    assert result.refusals_file == default_refusals_path(path) == tmp_path / "2024-02-15.refused.csv"
    assert result.stale_refusals_file is None
    _assert_clean(ledger)


def test_refusals_file_holds_each_refused_row_as_read_with_its_reason(ledger, book, tmp_path):
    path = _daily_file(tmp_path, book)
    target = tmp_path / "out" / "refused.csv"
    target.parent.mkdir()
    result = post_payment_file(path, actor="ops", uow=ledger.uow(), refusals_path=target)

    assert result.refusals_file == target and not default_refusals_path(path).exists()
    rows = _read_refusals(target)
    with target.open(encoding="utf-8") as fh:
        assert fh.readline().strip() == ",".join(REFUSAL_COLUMNS)
    assert [int(r["row"]) for r in rows] == sorted(EXPECTED_REFUSALS)
    by_row = {int(r["row"]): r for r in rows}
    assert by_row[7] == {
        "loan_id": "L1",
        "amount": "abc",
        "value_date": DUE,
        "idempotency_key": "k7",
        "row": "7",
        "code": "input.invalid",
        "field": "amount",
        "message": "`amount`: 'abc' is not a number; expected an amount like 1234.56",
    }
    assert by_row[15]["field"] == "" and by_row[15]["loan_id"] == ""
    assert by_row[5]["code"] == "payment.idempotency_conflict" and "100.00" in by_row[5]["message"]
    assert result.refusals[0].to_dict()["row"] == 5


def test_posting_the_same_file_twice_replays_everything_and_writes_nothing_new(ledger, book, tmp_path):
    path = _daily_file(tmp_path, book)
    first = post_payment_file(path, actor="ops", uow=ledger.uow())
    counts, positions = _row_counts(ledger), _positions(ledger)
    report = [(r["row"], r["code"], r["field"]) for r in _read_refusals(default_refusals_path(path))]

    again = post_payment_file(path, actor="ops", uow=ledger.uow(), chunk_size=3)
    assert (again.read, again.posted, again.replayed, again.refused) == (21, 0, first.posted + first.replayed, 13)
    assert again.amount_posted == 0 and again.loans_closed == ()
    # nothing new but the run's own audit row (payment_file.processed), which says it only replayed
    assert _row_counts(ledger) == {**counts, "audit_log": counts["audit_log"] + 1}
    assert _positions(ledger) == positions
    runs = _file_runs(ledger)
    assert [(r["replayed"], r["posted"], r["refused"]) for r in runs] == [
        (first.replayed, first.posted, 13),
        (first.posted + first.replayed, 0, 13),
    ]
    assert runs[0]["sha256"] == runs[1]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the same rows refused for the same reasons (L3's message now says it is closed, not closed by row 18)
    assert [(r["row"], r["code"], r["field"]) for r in _read_refusals(default_refusals_path(path))] == report
    _assert_clean(ledger)


def test_the_refusals_file_is_a_payment_file_once_corrected(ledger, book, tmp_path):
    path = _daily_file(tmp_path, book)
    first = post_payment_file(path, actor="ops", uow=ledger.uow())
    fixed = tmp_path / "fixed.csv"
    rows = _read_refusals(first.refusals_file)
    for row in rows:
        if row["idempotency_key"] == "k7":
            row["amount"] = "12.00"
    with fixed.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=REFUSAL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    again = post_payment_file(fixed, actor="ops", uow=ledger.uow())
    assert (again.read, again.posted, again.refused) == (13, 1, 12)
    assert again.ignored_columns == ("row", "code", "field", "message")
    _assert_clean(ledger)


def test_a_clean_file_writes_no_refusals_file_and_names_an_older_one(ledger, book, tmp_path):
    path = _write(tmp_path / "clean.csv", [["L1", "110.00", DUE, "c1"], ["L2", "110.00", DUE, "c2"]])
    result = post_payment_file(path, actor="ops", uow=ledger.uow())
    assert (result.read, result.posted, result.refused) == (2, 2, 0)
    assert result.refusals_file is None and result.to_dict()["refusals_file"] is None
    assert not default_refusals_path(path).exists()

    default_refusals_path(path).write_text("from an earlier run\n", encoding="utf-8")
    again = post_payment_file(path, actor="ops", uow=ledger.uow())
    assert again.replayed == 2 and again.refusals_file is None
    assert again.stale_refusals_file == default_refusals_path(path)
    assert default_refusals_path(path).read_text(encoding="utf-8") == "from an earlier run\n"


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (("loan_id", "amount", "value_date"), "idempotency_key"),
        (("借据号", "还款金额", "value_date", "idempotency_key"), "loan_id, amount"),
        (("Loan_ID", "amount", "value_date", "idempotency_key"), "loan_id"),
    ],
    ids=["no-key", "chinese-headers-are-not-aliases", "case-matters"],
)
def test_a_missing_column_posts_nothing_and_names_the_missing_and_expected_columns(
    ledger, book, tmp_path, header, missing
):
    path = _write(tmp_path / "bad.csv", [["L1", "110.00", DUE, "z"][: len(header)]], header=header)
    before = _row_counts(ledger)
    with pytest.raises(PaymentFileInvalid, match=f"lacks column\\(s\\) {missing}; expected the columns") as info:
        post_payment_file(path, actor="ops", uow=ledger.uow())
    assert "loan_id, amount, value_date, idempotency_key" in info.value.message
    assert info.value.code == "payment_file.invalid"
    assert _row_counts(ledger) == before
    assert not default_refusals_path(path).exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "lacks column"),
        (b"loan_id,amount,value_date,idempotency_key\nL1,1,050.00,2024-02-15,k\n", "row 1 has more fields"),
        ("loan_id,amount,value_date,idempotency_key\n借据,1,2024-02-15,k\n".encode("gbk"), "not UTF-8"),
        (b"loan_id,amount,amount,value_date,idempotency_key\n", "amount more than once"),
    ],
    ids=["empty-file", "unquoted-comma", "gbk", "doubled-column"],
)
def test_an_unreadable_file_is_one_error_naming_the_file(ledger, book, tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    before = _row_counts(ledger)
    with pytest.raises(PaymentFileInvalid, match=match):
        post_payment_file(path, actor="ops", uow=ledger.uow())
    assert _row_counts(ledger) == before


def test_a_header_only_file_reads_nothing_and_posts_nothing(ledger, book, tmp_path):
    result = post_payment_file(_write(tmp_path / "none.csv", []), actor="ops", uow=ledger.uow())
    assert (result.read, result.posted, result.replayed, result.refused) == (0, 0, 0, 0)


def test_a_parquet_file_posts_like_the_csv(ledger, book, tmp_path):
    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {
            "loan_id": ["L1", "L2", "L1"],
            "amount": [Decimal("110.00"), Decimal("110.00"), None],
            "value_date": [date(2024, 2, 15), date(2024, 2, 15), date(2024, 2, 15)],
            "idempotency_key": ["q1", "q2", "q3"],
        },
        schema_overrides={"amount": pl.Decimal(12, 2)},
    ).write_parquet(path)
    result = post_payment_file(path, actor="ops", uow=ledger.uow())
    assert (result.read, result.posted, result.refused) == (3, 2, 1)
    assert result.refusals[0].field == "amount" and result.refusals_file == tmp_path / "p.refused.csv"
    _assert_clean(ledger)


@pytest.mark.parametrize("dtype", [pl.Float64, pl.Int64], ids=["float", "integer"])
def test_a_parquet_amount_that_is_not_text_or_decimal_is_refused(tmp_path, dtype):
    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {"loan_id": ["L1"], "amount": [110], "value_date": [DUE], "idempotency_key": ["q"]},
        schema_overrides={"amount": dtype},
    ).write_parquet(path)
    with pytest.raises(PaymentFileInvalid, match=r"column amount is .*; expected text or Decimal"):
        read_payment_file(path)


@pytest.mark.parametrize(
    ("cells", "field", "match"),
    [
        (("L1", "110", DUE, "k"), None, "110.00"),
        ((" L1 ", " 1,234.5 ", f" {DUE} ", " k "), None, "1234.50"),
        ((None, "110", DUE, "k"), "loan_id", "`loan_id`: empty"),
        (("L1", None, DUE, "k"), "amount", "`amount`: empty"),
        (("L1", "   ", DUE, "k"), "amount", "`amount`: empty"),
        (("L1", "1.5.0", DUE, "k"), "amount", "not a number"),
        (("L1", "NaN", DUE, "k"), "amount", "not a finite amount"),
        (("L1", "0.001", DUE, "k"), "amount", "more than two decimals"),
        (("L1", "20240215", "20240215", "k"), "value_date", "'20240215' is not a date; expected YYYY-MM-DD"),
        (("L1", "1", "2024-W07-4", "k"), "value_date", "not a date"),
        (("L1", "1", "15/02/2024", "k"), "value_date", "not a date"),
        (("L1", "1", DUE, "x" * 129), "idempotency_key", "129 characters; expected 1 to 128"),
        (("L1", "abc", "bad", None), "amount", "`amount`: 'abc'.*; `value_date`: 'bad'.*; `idempotency_key`: empty"),
    ],
    ids=[
        "whole-yuan",
        "spaces-trimmed-thousands-separator",
        "no-loan",
        "no-amount",
        "blank-amount",
        "two-points",
        "nan",
        "sub-cent",
        "basic-iso-date",
        "week-date",
        "day-first",
        "key-too-long",
        "every-reason-named",
    ],
)
def test_a_row_is_parsed_from_text_or_refused_naming_the_field(cells, field, match):
    frame = pl.DataFrame([cells], schema=dict.fromkeys(COLUMNS, pl.String), orient="row")
    parsed = parse_rows(frame)
    assert parsed.read == 1
    if field is None:
        ((row, request),) = parsed.requests
        assert (row, request.loan_id, str(request.amount)) == (1, "L1", match)
        assert (request.value_date, request.idempotency_key) == (date(2024, 2, 15), "k")
        return
    assert parsed.requests == ()
    (refusal,) = parsed.refusals
    assert refusal.field == field and refusal.code == "input.invalid"
    assert refusal.loan_id == cells[0] and refusal.amount == cells[1]
    assert re.search(match, refusal.message), refusal.message


def test_progress_reports_rows_committed_out_of_rows_sent(ledger, book, tmp_path):
    path = _daily_file(tmp_path, book)
    calls: list[tuple[int, int]] = []
    post_payment_file(path, actor="ops", uow=ledger.uow(), chunk_size=4, progress=lambda d, t: calls.append((d, t)))
    # 21 rows, 9 refused while parsing: 12 sent, in chunks of 4
    assert calls == [(0, 12), (4, 12), (8, 12), (12, 12)]


def test_refusals_path_must_not_be_the_file_and_chunk_must_be_positive(ledger, book, tmp_path):
    path = _write(tmp_path / "f.csv", [["L1", "x", DUE, "k"]])
    with pytest.raises(InvalidInput, match=r"`refusals`: .* is the payment file itself"):
        post_payment_file(path, actor="ops", uow=ledger.uow(), refusals_path=path)
    with pytest.raises(InvalidInput, match="`refusals`: cannot write"):
        post_payment_file(path, actor="ops", uow=ledger.uow(), refusals_path=tmp_path / "no" / "such" / "r.csv")
    with pytest.raises(InvalidInput, match="`chunk`: 0 is not allowed"):
        post_payment_file(path, actor="ops", uow=ledger.uow(), chunk_size=0)
    assert path.read_text(encoding="utf-8").endswith("L1,x,2024-02-15,k\n")


def test_a_ledger_that_fails_part_way_says_what_was_committed_and_that_posting_again_is_safe(tmp_path, fixed_clock):
    path = _write(tmp_path / "f.csv", [["L1", "110.00", DUE, "k1"]])
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}")
    try:
        with pytest.raises(PaymentFileInterrupted, match=r"after 0 of 1 rows were committed .*post the file again"):
            post_payment_file(path, actor="ops", uow=UnitOfWork(engine, clock=fixed_clock))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("body", "read", "refused_rows"),
    [
        ("L1,110.00,2024-02-15,k1\n\n\n", 1, []),
        ("L1,110.00,2024-02-15,k1\r\n,,,\r\n  ,\r\n", 1, []),
        ("\nL1,110.00,2024-02-15,k1\n", 2, [1]),
        ("L1,110.00,2024-02-15,k1\n,,,\nL1,110.00,2024-02-15,k2\n\n", 3, [2]),
    ],
    ids=["trailing-newlines", "trailing-empty-fields-crlf", "leading-blank-line", "blank-line-inside"],
)
def test_blank_lines_after_the_last_row_are_the_files_end_and_others_are_refused(tmp_path, body, read, refused_rows):
    path = tmp_path / "f.csv"
    path.write_text(",".join(COLUMNS) + "\n" + body, encoding="utf-8", newline="")
    frame, _ = read_payment_file(path)
    parsed = parse_rows(frame)
    assert parsed.read == read
    assert [r.row for r in parsed.refusals] == refused_rows
    assert all(r.message == "blank row: every field is empty" for r in parsed.refusals)
