"""Posting a payment file (批量还款入账): a processor's daily repayment file (代扣/还款文件), every row accounted for.

A payment file is CSV (UTF-8, a header row) or Parquet with exactly these four columns, by these names:

====================  ==========================================================================
``loan_id``           the ledger's loan id
``amount``            yuan, at most two decimals, more than zero (``1050.00``; ``1,050.00`` quoted)
``value_date``        the value date (起息日), ``YYYY-MM-DD``
``idempotency_key``   1 to 128 characters; the processor's serial number (流水号) is the natural key
====================  ==========================================================================

No header aliases: a header is matched exactly, after trimming spaces and a UTF-8 byte-order mark,
so a file with ``借据号`` or ``Amount`` is refused naming the missing columns and the expected ones
(map such a file once, upstream, rather than guessing here). Other columns are ignored and named in
the result. A missing or doubled required column, an unreadable file, or a file that is not UTF-8
is one :class:`PaymentFileInvalid` and nothing is posted.

Every cell is read as text (CSV: Polars with ``infer_schema=False``; Parquet: ``amount`` must be a
string or decimal column, never a float or integer one, whose unit could be fen) and parsed once,
here, with surrounding spaces trimmed: the amount with :func:`runoff.money.parse_amount` (Decimal,
exact), the date as ``YYYY-MM-DD`` only. A row with an empty or unparsable field is *refused*
with its row number (1 for the first row under the header) and every reason, and nothing is posted
for it; blank lines after the last row are the file's end, not rows. The other rows go, in file
order, through :func:`runoff.app.payments.post_payments` (one transaction per chunk, idempotent per
key), which posts each, replays it (its key was posted before with the same loan, amount and date,
or earlier in the file) or refuses it (unknown or closed loan, key reused for another payment, date
before the loan's start, ...).

So every row read ends up in exactly one place: ``read = posted + replayed + refused``, checked before
the result is returned. The refused rows are written to a CSV (default ``<file stem>.refused.csv``
beside the file; nothing is written when no row is refused): the four columns as read, then ``row``,
``code``, ``field`` (the file's column) and ``message``. It is itself a payment file: correct the rows
and post it; rows posted meanwhile replay by their keys.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.exc import OperationalError

from runoff.app.payments import (
    DEFAULT_CHUNK,
    MAX_KEY_LENGTH,
    PaymentOutcome,
    PaymentRequest,
    post_payments,
)
from runoff.errors import InvalidInput, RunoffError
from runoff.money import parse_amount
from runoff.store.ledger.models import LoanStatus
from runoff.store.ledger.repository import audit_entry
from runoff.store.ledger.unit_of_work import UnitOfWork

COLUMNS: tuple[str, ...] = ("loan_id", "amount", "value_date", "idempotency_key")
"""The payment file's columns, in the order the refusals file writes them."""

REFUSAL_COLUMNS: tuple[str, ...] = (*COLUMNS, "row", "code", "field", "message")
"""The refusals file: the row's four fields as read, its row number, and why it was refused."""

FILE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
REFUSALS_SUFFIX = ".refused.csv"

Progress = Callable[[int, int], None]
"""Called with (rows sent to the ledger so far, rows to send) at the start and after each committed chunk."""

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FIELD_OF_LEDGER = {"loan": "loan_id"}  # the ledger names the loan `loan`; the file's column is loan_id
_DUPLICATED = re.compile(r"^(?P<name>.+)_duplicated_[0-9]+$")  # Polars' name for a repeated CSV header

# Parquet column types read as text without guessing a unit: Decimal and strings for money, Date for dates.
_INTEGER_TYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_TEXT_TYPES = (pl.String, pl.Categorical, pl.Enum)
_PARQUET_TYPES: dict[str, tuple[Any, ...]] = {
    "loan_id": (*_TEXT_TYPES, *_INTEGER_TYPES),
    "amount": (*_TEXT_TYPES, pl.Decimal),
    "value_date": (*_TEXT_TYPES, pl.Date),
    "idempotency_key": (*_TEXT_TYPES, *_INTEGER_TYPES),
}


class PaymentFileInvalid(InvalidInput):
    """The payment file as a whole cannot be used (unreadable, not UTF-8, a required column missing); nothing posted."""

    code = "payment_file.invalid"


class PaymentFileInterrupted(RunoffError):
    """The ledger failed part way through a file; the chunks committed before stay posted."""

    code = "payment_file.interrupted"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A row not posted: its number (1 = the first row under the header), its fields as read, and why."""

    row: int
    loan_id: str | None
    amount: str | None
    value_date: str | None
    idempotency_key: str | None
    code: str
    field: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "loan_id": self.loan_id,
            "amount": self.amount,
            "value_date": self.value_date,
            "idempotency_key": self.idempotency_key,
            "code": self.code,
            "field": self.field,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class PaymentFileResult:
    """What became of each row of a payment file: ``read = posted + replayed + refused``.

    ``amount_posted`` sums the payments posted by this run (replays excluded); ``loans_closed`` are the
    loans one of those payments closed. ``refusals_file`` is None when no row was refused (nothing
    written); ``stale_refusals_file`` then names a refusals file an earlier run left at that path.
    """

    file: Path
    read: int
    posted: int
    replayed: int
    refused: int
    amount_posted: Decimal
    loans_closed: tuple[str, ...]
    refusals: tuple[Refusal, ...]
    refusals_file: Path | None
    stale_refusals_file: Path | None = None
    ignored_columns: tuple[str, ...] = ()

    def reasons(self) -> dict[tuple[str, str | None], int]:
        """Refused rows per (code, field), most frequent first."""
        counts: dict[tuple[str, str | None], int] = {}
        for r in self.refusals:
            counts[(r.code, r.field)] = counts.get((r.code, r.field), 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] or "")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "read": self.read,
            "posted": self.posted,
            "replayed": self.replayed,
            "refused": self.refused,
            "amount_posted": str(self.amount_posted),
            "loans_closed": len(self.loans_closed),
            "closed_loan_ids": list(self.loans_closed),
            "refusals_file": str(self.refusals_file) if self.refusals_file else None,
            "stale_refusals_file": str(self.stale_refusals_file) if self.stale_refusals_file else None,
            "ignored_columns": list(self.ignored_columns),
            "refusals": [r.to_dict() for r in self.refusals],
        }


@dataclass(frozen=True, slots=True)
class ParsedRows:
    """A payment file's rows after parsing: the requests to post with their row numbers, and the refusals."""

    read: int
    requests: tuple[tuple[int, PaymentRequest], ...]
    refusals: tuple[Refusal, ...]
    raw: dict[int, tuple[str | None, ...]]  # row → its four fields as read, for rows sent to the ledger


# --- reading ---------------------------------------------------------------------------------------------------


def default_refusals_path(path: Path) -> Path:
    """``<file stem>.refused.csv`` beside the payment file."""
    return path.with_name(path.stem + REFUSALS_SUFFIX)


def read_payment_file(path: Path) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """The file's four columns as text (nulls for empty cells), one row per data row, and the ignored columns.

    Raises :class:`PaymentFileInvalid` (naming the file) when it cannot be read, is not UTF-8, or lacks
    a required column; nothing is coerced: CSV cells are read as text, Parquet columns must be of a type
    that reads as text without a guess (see the module docstring).
    """
    kind = FILE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise PaymentFileInvalid(
            f"`file`: {path}: {path.suffix or 'no extension'} is not a payment file format; expected "
            + ", ".join(sorted(FILE_FORMATS)),
            field="file",
        )
    if not path.is_file():
        raise PaymentFileInvalid(f"`file`: {path}: no such file", field="file")
    try:
        frame = _read_csv(path) if kind == "csv" else pl.read_parquet(path)
    except PaymentFileInvalid:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PaymentFileInvalid(f"`file`: {path} cannot be read as {kind}: {first}", field="file") from None
    names = [_header(c) for c in frame.columns]
    _check_columns(path, names)
    frame = frame.rename({c: n for c, n in zip(frame.columns, names, strict=True) if n in COLUMNS})
    if kind == "parquet":
        frame = _parquet_as_text(path, frame)
    ignored = tuple(n for n in names if n not in COLUMNS)
    return frame.select(COLUMNS), ignored


def _header(name: str) -> str:
    """A header as the user wrote it: spaces and a byte-order mark trimmed, Polars' suffix for a repeat undone."""
    name = name.strip().lstrip("\ufeff").strip()
    repeated = _DUPLICATED.match(name)
    return repeated["name"].strip() if repeated else name


def _read_csv(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema=False, raise_if_empty=False)
    except pl.exceptions.ComputeError as exc:
        text = str(exc)
        if "utf-8" in text.lower() or "utf8" in text.lower():
            raise PaymentFileInvalid(
                f"`file`: {path} is not UTF-8 text; save it as UTF-8 (a GBK file from a processor: "
                f"iconv -f GBK -t UTF-8)",
                field="file",
            ) from None
        if "more fields" in text:
            raise PaymentFileInvalid(
                f"`file`: {path}: {_ragged_row(path)} has more fields than the header; "
                'quote a field that holds a comma (an amount like "1,050.00")',
                field="file",
            ) from None
        raise


def _ragged_row(path: Path) -> str:
    """Which data row has more fields than the header (Polars does not say)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            width = len(next(reader, []))
            for n, cells in enumerate(reader, start=1):
                if len(cells) > width:
                    return f"row {n}"
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return "a row"


def _check_columns(path: Path, columns: Sequence[str]) -> None:
    doubled = [c for c in COLUMNS if columns.count(c) > 1]
    if doubled:
        raise PaymentFileInvalid(
            f"`file`: {path} has column(s) {', '.join(doubled)} more than once; expected each of "
            f"{', '.join(COLUMNS)} once",
            field="file",
        )
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        found = ", ".join(columns) if columns else "no columns (an empty file)"
        raise PaymentFileInvalid(
            f"`file`: {path} lacks column(s) {', '.join(missing)}; expected the columns "
            f"{', '.join(COLUMNS)} (found: {found}); no row was posted",
            field="file",
            details={"missing": missing, "expected": list(COLUMNS), "found": list(columns)},
        )


def _parquet_as_text(path: Path, frame: pl.DataFrame) -> pl.DataFrame:
    for name in COLUMNS:
        dtype = frame.schema[name]
        if not isinstance(dtype, _PARQUET_TYPES[name]):
            allowed = (
                "text or Decimal" if name == "amount" else "text, " + ("Date" if name == "value_date" else "integer")
            )
            raise PaymentFileInvalid(
                f"`file`: {path}: column {name} is {dtype}; expected {allowed}"
                + (" (a float is not exact and an integer could be fen)" if name == "amount" else ""),
                field=name,
            )
    return frame.with_columns(pl.col(name).cast(pl.String) for name in COLUMNS)


# --- parsing ---------------------------------------------------------------------------------------------------


def parse_rows(frame: pl.DataFrame) -> ParsedRows:
    """Parse each row of ``frame`` (the four columns as text) into a request, or a refusal with every reason.

    Blank rows after the last row with a value are the file's end (an editor's trailing newline), not
    rows; a blank row before it is read and refused, since it may be a line the processor garbled.
    """
    requests: list[tuple[int, PaymentRequest]] = []
    refusals: list[Refusal] = []
    raw: dict[int, tuple[str | None, ...]] = {}
    trimmed = frame.select(pl.col(c).str.strip_chars().fill_null("") for c in COLUMNS).rows()
    while trimmed and not any(trimmed[-1]):
        trimmed.pop()
    rows = frame.select(COLUMNS).head(len(trimmed)).rows()
    for row, (cells, (loan_id, amount, value_date, key)) in enumerate(zip(rows, trimmed, strict=True), start=1):
        problems: list[InvalidInput] = []
        parsed_amount: Decimal | None = None
        parsed_date: date | None = None
        if not (loan_id or amount or value_date or key):
            problems.append(InvalidInput("blank row: every field is empty", field=None))
        else:
            if not loan_id:
                problems.append(InvalidInput("`loan_id`: empty; expected a loan id", field="loan_id"))
            parsed_amount = _amount(amount, problems)
            parsed_date = _date(value_date, problems)
            if not key:
                problems.append(
                    InvalidInput(
                        f"`idempotency_key`: empty; expected 1 to {MAX_KEY_LENGTH} characters", field="idempotency_key"
                    )
                )
            elif len(key) > MAX_KEY_LENGTH:
                problems.append(
                    InvalidInput(
                        f"`idempotency_key`: {len(key)} characters; expected 1 to {MAX_KEY_LENGTH}",
                        field="idempotency_key",
                    )
                )
        if problems:
            first = problems[0]
            refusals.append(_refusal(row, cells, code=first.code, field=first.field, message=_joined(problems)))
            continue
        assert parsed_amount is not None and parsed_date is not None
        requests.append((row, PaymentRequest(loan_id, parsed_amount, parsed_date, key)))
        raw[row] = cells
    return ParsedRows(read=len(rows), requests=tuple(requests), refusals=tuple(refusals), raw=raw)


def _amount(text: str, problems: list[InvalidInput]) -> Decimal | None:
    if not text:
        problems.append(InvalidInput("`amount`: empty; expected an amount like 1234.56", field="amount"))
        return None
    try:
        return parse_amount(text, field="amount")
    except InvalidInput as exc:
        problems.append(exc)
        return None


def _date(text: str, problems: list[InvalidInput]) -> date | None:
    if not text:
        problems.append(InvalidInput("`value_date`: empty; expected a date YYYY-MM-DD", field="value_date"))
        return None
    try:
        # fromisoformat alone also takes 20240201 and week dates; the file's format is YYYY-MM-DD only
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    problems.append(InvalidInput(f"`value_date`: {text!r} is not a date; expected YYYY-MM-DD", field="value_date"))
    return None


def _joined(problems: Sequence[RunoffError]) -> str:
    return "; ".join(p.message for p in problems)


def _refusal(row: int, cells: Sequence[str | None], *, code: str, field: str | None, message: str) -> Refusal:
    loan_id, amount, value_date, key = cells
    return Refusal(row, loan_id, amount, value_date, key, code=code, field=field, message=message)


# --- posting ---------------------------------------------------------------------------------------------------


def post_payment_file(
    path: Path,
    *,
    actor: str,
    uow: UnitOfWork,
    chunk_size: int = DEFAULT_CHUNK,
    refusals_path: Path | None = None,
    progress: Progress | None = None,
) -> PaymentFileResult:
    """Post every valid row of the payment file at ``path``; refuse the others with their row and reason.

    ``refusals_path`` is where refused rows are written (default :func:`default_refusals_path`); it
    is written only when a row is refused. ``progress`` is called with (rows sent so far, rows to send).
    Raises :class:`PaymentFileInvalid` before anything is posted when the file as a whole is unusable.
    """
    if chunk_size < 1:
        raise InvalidInput(f"`chunk`: {chunk_size} is not allowed; expected 1 or more", field="chunk")
    target = refusals_path if refusals_path is not None else default_refusals_path(path)
    _check_refusals_path(target, path)
    frame, ignored = read_payment_file(path)
    parsed = parse_rows(frame)
    outcomes = _post(parsed.requests, actor=actor, uow=uow, chunk_size=chunk_size, progress=progress)

    refusals = list(parsed.refusals)
    posted = replayed = 0
    amount_posted = Decimal("0.00")
    closed: set[str] = set()
    for (row, _), outcome in zip(parsed.requests, outcomes, strict=True):
        if outcome.error is not None:
            err = outcome.error
            field = _FIELD_OF_LEDGER.get(err.field, err.field) if err.field else None
            refusals.append(_refusal(row, parsed.raw[row], code=err.code, field=field, message=err.message))
            continue
        result = outcome.result
        assert result is not None
        if result.replayed:
            replayed += 1
            continue
        posted += 1
        amount_posted += result.amount
        if result.loan_status == LoanStatus.CLOSED.value:
            closed.add(result.loan_id)
    refusals.sort(key=lambda r: r.row)
    if parsed.read != posted + replayed + len(refusals):
        raise AssertionError(
            f"{path}: read {parsed.read} != posted {posted} + replayed {replayed} + refused {len(refusals)}"
        )

    written: Path | None = None
    stale: Path | None = None
    if refusals:
        _write_refusals(target, refusals, posted=posted, replayed=replayed)
        written = target
    elif target.exists():
        stale = target
    _audit_run(
        uow,
        actor=actor,
        path=path,
        counts={"read": parsed.read, "posted": posted, "replayed": replayed, "refused": len(refusals)},
        amount_posted=amount_posted,
        refusals_file=written,
    )
    return PaymentFileResult(
        file=path,
        read=parsed.read,
        posted=posted,
        replayed=replayed,
        refused=len(refusals),
        amount_posted=amount_posted,
        loans_closed=tuple(sorted(closed)),
        refusals=tuple(refusals),
        refusals_file=written,
        stale_refusals_file=stale,
        ignored_columns=ignored,
    )


def _audit_run(
    uow: UnitOfWork,
    *,
    actor: str,
    path: Path,
    counts: dict[str, int],
    amount_posted: Decimal,
    refusals_file: Path | None,
) -> None:
    """One audit row per run (``payment_file.processed``): which file (by name and SHA-256), what became of it.

    The payments themselves are audited one by one as they post; this row is what an auditor asks for
    first, which files were run, when, by whom, and with what totals, including a rerun that only replayed.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    details: dict[str, Any] = {
        "file": str(path),
        "sha256": digest.hexdigest(),
        **counts,
        "amount_posted": str(amount_posted),
        "refusals_file": str(refusals_file) if refusals_file else None,
    }
    with uow:
        uow.ledger.append_audit(
            [audit_entry(uow.now(), actor, "payment_file.processed", "payment_file", path.name, details)]
        )
        uow.commit()


def _post(
    requests: Sequence[tuple[int, PaymentRequest]],
    *,
    actor: str,
    uow: UnitOfWork,
    chunk_size: int,
    progress: Progress | None,
) -> list[PaymentOutcome]:
    total = len(requests)
    done = 0

    def committed(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    if not requests:
        return []
    try:
        return post_payments(
            [req for _, req in requests], actor=actor, uow=uow, chunk_size=chunk_size, progress=committed
        )
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise PaymentFileInterrupted(
            f"the ledger failed after {done:,} of {total:,} rows were committed ({reason}); "
            "post the file again: rows already posted replay by their keys and the rest post",
            details={"committed": done, "to_post": total},
        ) from None


def _check_refusals_path(target: Path, source: Path) -> None:
    """Refuse, before anything is posted, a refusals path that would overwrite the file or cannot be written."""
    if target.resolve() == source.resolve():
        raise InvalidInput(f"`refusals`: {target} is the payment file itself; expected another path", field="refusals")
    parent = target.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InvalidInput(
            f"`refusals`: cannot write {target}: {parent} is not a writable folder; expected a path in one",
            field="refusals",
        )


def _write_refusals(target: Path, refusals: Iterable[Refusal], *, posted: int, replayed: int) -> None:
    """The refusals as CSV, written to a temporary file then renamed, so a reader never sees half a report."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REFUSAL_COLUMNS)
    for r in refusals:
        writer.writerow([r.loan_id, r.amount, r.value_date, r.idempotency_key, r.row, r.code, r.field or "", r.message])
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PaymentFileInterrupted(
            f"`refusals`: cannot write {target} ({exc.strerror or exc}); {posted:,} rows were posted and "
            f"{replayed:,} replayed; post the file again with --refusals elsewhere (posted rows replay)",
            field="refusals",
        ) from None
