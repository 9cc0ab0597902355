"""The daily close (日终批处理) as one use case: `runoff close-day --as-of DATE`, and the repost of one loan.

The close of ``as_of``, in one transaction, set-based (:mod:`runoff.store.ledger.daily_close`):

1. loans flagged by a backdated payment are reposted (:mod:`runoff.store.ledger.repost`);
2. credit balances are spent on installments that fell due;
3. every open loan with something overdue gets its days past due, bucket, overdue amounts and
   penalty interest (one Dr penalty_receivable / Cr penalty_income entry per loan charged); loans
   that caught up go back to current;
4. a ``ledger_closes`` row with the counts and an audit entry.

The close states the book as of ``as_of``: DPD as of that day, penalty for every day before it. It
may catch up several days at once (the penalty over the gap is what the daily closes would have
charged, to the fen). Closing the same day again changes nothing and returns the first close's
figures; a date before the last close is refused unless ``allow_backwards`` (which recomputes DPD
and buckets as of that date and takes no penalty back: a repost does that).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from runoff.errors import Conflict, InvalidInput
from runoff.money import from_minor
from runoff.store.ledger.daily_close import (
    DEFAULT_CHUNK,
    AgingTotals,
    CreditTotals,
    age_and_accrue,
    apply_credit_falling_due,
    audit,
    book_by_bucket,
    delinquent_count,
    fail_close,
    finish_close,
    last_close,
    open_loans,
    reset_current,
    start_close,
)
from runoff.store.ledger.repost import RepostResult, loans_to_repost, repost_loans
from runoff.store.ledger.unit_of_work import UnitOfWork

CloseProgress = Callable[[str, int, int], None]
"""Told (step, loans done, loans in the step) as the close goes."""


@dataclass(frozen=True, slots=True)
class CloseDayResult:
    """What a close did. ``already_closed``: ``as_of`` was closed before and these are that close's figures."""

    close_id: int
    as_of: date
    previous_as_of: date | None
    reposted: int
    credit_loans: int
    credit_spent_fen: int
    delinquent_loans: int
    loans_charged: int
    penalty_fen: int  # net penalty charged: accrued by the close, less what reposts took back
    entries: int
    capped_loans: int
    cured_loans: int
    by_bucket: dict[str, dict[str, int | None]] = field(default_factory=dict)
    seconds: float = 0.0
    already_closed: bool = False
    seconds_by_step: dict[str, float] = field(default_factory=dict)

    @property
    def days(self) -> int:
        """Days the close moved the book forward (0 for a rerun or a close backwards)."""
        return max((self.as_of - self.previous_as_of).days, 0) if self.previous_as_of else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "close_id": self.close_id,
            "as_of": self.as_of.isoformat(),
            "previous_as_of": self.previous_as_of.isoformat() if self.previous_as_of else None,
            "days": self.days,
            "already_closed": self.already_closed,
            "reposted_loans": self.reposted,
            "credit_applied_loans": self.credit_loans,
            "credit_applied": str(from_minor(self.credit_spent_fen)),
            "delinquent_loans": self.delinquent_loans,
            "loans_charged_penalty": self.loans_charged,
            "penalty_accrued": str(from_minor(self.penalty_fen)),
            "journal_entries": self.entries,
            "capped_loans": self.capped_loans,
            "cured_loans": self.cured_loans,
            "by_bucket": {
                b: {
                    "loans": v["loans"],
                    "principal": None if v["principal_fen"] is None else str(from_minor(v["principal_fen"])),
                }
                for b, v in self.by_bucket.items()
            },
            "seconds": round(self.seconds, 3),
            "seconds_by_step": {k: round(v, 3) for k, v in self.seconds_by_step.items()},
        }

    def details(self) -> dict[str, Any]:
        """What the ``ledger_closes`` row keeps (amounts in fen), enough to answer a rerun."""
        return {
            "previous_as_of": self.previous_as_of.isoformat() if self.previous_as_of else None,
            "reposted": self.reposted,
            "credit_loans": self.credit_loans,
            "credit_spent_fen": self.credit_spent_fen,
            "delinquent_loans": self.delinquent_loans,
            "loans_charged": self.loans_charged,
            "entries": self.entries,
            "capped_loans": self.capped_loans,
            "cured_loans": self.cured_loans,
            "by_bucket": self.by_bucket,
            "seconds": round(self.seconds, 3),
            "seconds_by_step": {k: round(v, 3) for k, v in self.seconds_by_step.items()},
        }


def close_day(
    *,
    as_of: date,
    actor: str,
    uow: UnitOfWork,
    allow_backwards: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    progress: CloseProgress | None = None,
) -> CloseDayResult:
    """Close the ledger's day ``as_of`` (see the module docstring), atomically."""
    if chunk_size < 1:
        raise InvalidInput(f"`chunk_size`: {chunk_size} is not allowed; expected 1 or more loans", field="chunk_size")
    started = time.perf_counter()
    begun: list[bool] = []
    try:
        with uow:
            result = _close(
                uow,
                as_of,
                actor=actor,
                allow_backwards=allow_backwards,
                chunk=chunk_size,
                progress=progress,
                begun=begun,
            )
            if not result.already_closed:
                committing = time.perf_counter()
                uow.commit()
                result.seconds_by_step["commit"] = time.perf_counter() - committing
    except Exception as exc:
        if begun:
            _record_failure(uow, as_of, actor=actor, error=exc)
        raise
    if result.already_closed:
        return result
    return replace(result, seconds=time.perf_counter() - started)


def _close(
    uow: UnitOfWork,
    as_of: date,
    *,
    actor: str,
    allow_backwards: bool,
    chunk: int,
    progress: CloseProgress | None,
    begun: list[bool],
) -> CloseDayResult:
    conn = uow.connection
    ledger = uow.ledger
    now = uow.now()
    previous = last_close(conn)
    if previous is not None and as_of <= previous.as_of and not allow_backwards:
        if as_of == previous.as_of:
            return _from_record(
                previous.id, as_of, previous.loans_processed, previous.penalties_accrued_fen, previous.details
            )
        raise Conflict(
            f"`as_of`: {as_of.isoformat()} is before the last close {previous.as_of.isoformat()}; "
            "closes move forward (use --allow-backwards to recompute DPD and buckets as of an earlier day)",
            field="as_of",
        )
    close_id = start_close(conn, as_of, actor=actor, now=now)
    begun.append(True)

    steps: dict[str, float] = {}
    clock = time.perf_counter()
    flagged = loans_to_repost(conn, as_of=as_of)
    step_progress = _stepper(progress, "repost", len(flagged))
    reposts: list[RepostResult] = []
    for start in range(0, len(flagged), 500):
        batch = flagged[start : start + 500]
        reposts += repost_loans(ledger, batch, actor=actor, now=now, close_id=close_id)
        step_progress(len(batch))

    clock = _lap(steps, "repost", clock)
    credit: CreditTotals = apply_credit_falling_due(ledger, as_of, close_id=close_id, actor=actor, now=now)
    clock = _lap(steps, "credit", clock)
    aging: AgingTotals = age_and_accrue(
        ledger,
        as_of,
        close_id=close_id,
        actor=actor,
        now=now,
        chunk_size=chunk,
        progress=_stepper(progress, "age", delinquent_count(conn, as_of)),
    )
    steps |= {f"aging_{part}": seconds for part, seconds in aging.seconds.items()}
    clock = time.perf_counter()
    cured = reset_current(conn, as_of, now=now)
    clock = _lap(steps, "reset", clock)
    result = CloseDayResult(
        close_id=close_id,
        as_of=as_of,
        previous_as_of=previous.as_of if previous else None,
        reposted=len(reposts),
        credit_loans=credit.loans,
        credit_spent_fen=credit.spent_fen,
        delinquent_loans=aging.loans,
        loans_charged=aging.loans_charged,
        penalty_fen=aging.penalty_fen
        + credit.penalty_fen
        + sum(r.penalty_after_fen - r.penalty_before_fen for r in reposts),
        entries=aging.entries + credit.entries + sum(r.entries_posted for r in reposts),
        capped_loans=aging.capped_loans,
        cured_loans=cured,
        by_bucket=book_by_bucket(open_loans(conn), aging),
        seconds_by_step=steps,
    )
    finish_close(
        conn,
        close_id,
        loans_processed=aging.loans + cured + credit.loans + len(reposts),
        penalties_fen=result.penalty_fen,
        details=result.details(),
        now=uow.now(),
    )
    audit(
        conn,
        actor=actor,
        now=now,
        action="ledger.closed",
        object_type="ledger_close",
        object_id=str(close_id),
        details={"as_of": as_of.isoformat(), **result.details()},
    )
    return result


def _lap(steps: dict[str, float], step: str, since: float) -> float:
    now = time.perf_counter()
    steps[step] = steps.get(step, 0.0) + now - since
    return now


def _stepper(progress: CloseProgress | None, step: str, total: int) -> Callable[[int], None]:
    done = 0
    if progress is not None:
        progress(step, 0, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(step, done, total)

    return advance


def _from_record(close_id: int, as_of: date, processed: int, penalty_fen: int, d: dict[str, Any]) -> CloseDayResult:
    previous = d.get("previous_as_of")
    return CloseDayResult(
        close_id=close_id,
        as_of=as_of,
        previous_as_of=date.fromisoformat(previous) if previous else None,
        reposted=int(d.get("reposted", 0)),
        credit_loans=int(d.get("credit_loans", 0)),
        credit_spent_fen=int(d.get("credit_spent_fen", 0)),
        delinquent_loans=int(d.get("delinquent_loans", processed)),
        loans_charged=int(d.get("loans_charged", 0)),
        penalty_fen=penalty_fen,
        entries=int(d.get("entries", 0)),
        capped_loans=int(d.get("capped_loans", 0)),
        cured_loans=int(d.get("cured_loans", 0)),
        by_bucket=dict(d.get("by_bucket", {})),
        seconds=float(d.get("seconds", 0.0)),
        already_closed=True,
        seconds_by_step=dict(d.get("seconds_by_step", {})),
    )


def _record_failure(uow: UnitOfWork, as_of: date, *, actor: str, error: BaseException) -> None:
    """Leave a ``failed`` close row and an audit entry behind (the close itself was rolled back)."""
    try:
        with uow:
            conn = uow.connection
            close_id = start_close(conn, as_of, actor=actor, now=uow.now())
            reason = f"{type(error).__name__}: {error}"
            fail_close(conn, close_id, reason=reason, now=uow.now())
            audit(
                conn,
                actor=actor,
                now=uow.now(),
                action="ledger.close_failed",
                object_type="ledger_close",
                object_id=str(close_id),
                details={"as_of": as_of.isoformat(), "error": reason},
            )
            uow.commit()
    except Exception:  # the original error is what the caller must see
        return


# --- repost of one loan --------------------------------------------------------------------------------------------


def repost_loan(loan_id: str, *, from_date: date | None, actor: str, uow: UnitOfWork) -> RepostResult:
    """Repost ``loan_id`` from ``from_date`` (default: the date its backdated payment flagged), atomically.

    Re-allocates its payments in value-date order and re-accrues its penalties from that date; no
    other loan is read or written.
    """
    with uow:
        (result,) = repost_loans(uow.ledger, [loan_id], actor=actor, now=uow.now(), from_date=from_date)
        uow.commit()
    return result
