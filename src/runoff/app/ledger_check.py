"""`runoff ledger verify`: check the ledger's invariants and list what breaks them (对账).

The invariants: for every loan, scheduled principal − principal allocated == outstanding principal
(and the journal's receivable agrees); each payment's allocations sum to its amount and bring that
much cash; every journal entry balances; no orphan rows. Each is one set-based query
(:mod:`runoff.store.ledger.invariants`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select

from runoff.store.ledger.invariants import CHECKS, Violation, run_scans
from runoff.store.ledger.journal import balances_as_of
from runoff.store.ledger.models import LedgerAccount, journal_entries, loans, payments
from runoff.store.ledger.unit_of_work import UnitOfWork

__all__ = ["CHECKS", "VerifyReport", "trial_balance", "verify_ledger"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify`` found: violations (the first ``limit`` per check), counts per check, and what was checked."""

    findings: tuple[Violation, ...]
    counts: dict[str, int]
    loans: int
    payments: int
    journal_entries: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def findings_as_dicts(self) -> list[dict[str, Any]]:
        return [
            {
                "check": f.check,
                "object_type": f.object_type,
                "object_id": f.object_id,
                "expected_fen": f.expected,
                "actual_fen": f.actual,
                "message": f.message,
            }
            for f in self.findings
        ]


def verify_ledger(*, uow: UnitOfWork, limit: int = 1000) -> VerifyReport:
    """Run every invariant in one read transaction (a consistent snapshot on PostgreSQL and SQLite WAL)."""
    started = time.perf_counter()
    with uow:
        conn = uow.connection
        counts, findings = run_scans(conn, limit=limit)
        n_loans = int(conn.execute(select(func.count()).select_from(loans)).scalar_one())
        n_payments = int(conn.execute(select(func.count()).select_from(payments)).scalar_one())
        n_entries = int(conn.execute(select(func.count()).select_from(journal_entries)).scalar_one())
    return VerifyReport(
        findings=tuple(findings),
        counts=counts,
        loans=n_loans,
        payments=n_payments,
        journal_entries=n_entries,
        seconds=time.perf_counter() - started,
    )


def trial_balance(
    *, uow: UnitOfWork, as_of: date | None = None, loan_id: str | None = None
) -> dict[LedgerAccount, int]:
    """Each account's balance in fen (natural sign) for the book or one loan, as of a value date (all if None)."""
    with uow:
        if loan_id is not None:
            uow.ledger.require_loan(loan_id)
        return balances_as_of(uow.connection, as_of=as_of, loan_id=loan_id)
