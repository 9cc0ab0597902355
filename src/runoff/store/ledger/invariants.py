"""The ledger's invariants as set-based SQL: each check is one query returning only the rows that break it.

Every query is a GROUP BY or an anti-join over whole tables (no query per loan), so verifying a
book of a million loans costs a few table scans. The application layer
(:mod:`runoff.app.ledger_check`) turns the rows into findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class Violation:
    """One row that breaks an invariant: the object, what was expected and what the ledger holds (fen)."""

    check: str
    object_type: str
    object_id: str
    expected: int | None
    actual: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    description: str
    object_type: str
    sql: str  # selects (object_id, expected, actual)
    message: Callable[[str, int | None, int | None], str]


def _live(alias: str) -> str:
    """Join condition: ``alias`` rows of the loan's live schedule version."""
    return f"{alias}.loan_id = l.id AND {alias}.schedule_version = l.schedule_version"


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "schedule_principal",
        "scheduled principal − principal paid − principal waived (live version) == the loan's outstanding principal",
        "loan",
        f"""
        SELECT l.id, l.outstanding_principal_fen,
               COALESCE(SUM(i.principal_due_fen - i.principal_paid_fen - i.principal_waived_fen), 0)
        FROM loans l LEFT JOIN installments i ON {_live("i")}
        GROUP BY l.id, l.outstanding_principal_fen
        HAVING l.outstanding_principal_fen
               <> COALESCE(SUM(i.principal_due_fen - i.principal_paid_fen - i.principal_waived_fen), 0)
        """,
        lambda o, e, a: f"loan {o}: outstanding principal is {e} fen but its live installments leave {a} fen",
    ),
    Invariant(
        "principal_allocated",
        "principal paid on the live installments == principal allocated under that version (plus principal "
        "repaid before the ledger's history, on version 1)",
        "loan",
        f"""
        WITH paid AS (
            SELECT i.loan_id, SUM(i.principal_paid_fen) AS fen
            FROM installments i JOIN loans l ON {_live("i")} GROUP BY i.loan_id
        ), allocated AS (
            SELECT a.loan_id, SUM(a.amount_fen) AS fen
            FROM allocations a JOIN loans l ON {_live("a")}
            WHERE a.component = 'principal' AND NOT a.reversed GROUP BY a.loan_id
        )
        SELECT l.id, COALESCE(paid.fen, 0),
               COALESCE(allocated.fen, 0)
               + CASE WHEN l.schedule_version = 1 THEN l.opening_principal_paid_fen ELSE 0 END
        FROM loans l
        LEFT JOIN paid ON paid.loan_id = l.id
        LEFT JOIN allocated ON allocated.loan_id = l.id
        WHERE COALESCE(paid.fen, 0) <> COALESCE(allocated.fen, 0)
              + CASE WHEN l.schedule_version = 1 THEN l.opening_principal_paid_fen ELSE 0 END
        """,
        lambda o, e, a: f"loan {o}: installments show {e} fen of principal paid but allocations account for {a} fen",
    ),
    Invariant(
        "receivable_matches_journal",
        "the journal's loans_receivable balance == the loan's outstanding principal (loans not charged off)",
        "loan",
        """
        WITH lr AS (
            SELECT loan_id, SUM(debit_fen - credit_fen) AS fen
            FROM journal_lines WHERE account = 'loans_receivable' AND loan_id IS NOT NULL GROUP BY loan_id
        )
        SELECT l.id, l.outstanding_principal_fen, COALESCE(lr.fen, 0)
        FROM loans l LEFT JOIN lr ON lr.loan_id = l.id
        WHERE l.status <> 'charged-off' AND COALESCE(lr.fen, 0) <> l.outstanding_principal_fen
        """,
        lambda o, e, a: f"loan {o}: outstanding principal is {e} fen but loans_receivable holds {a} fen",
    ),
    Invariant(
        "penalty_matches_journal",
        "the journal's penalty_receivable balance == penalty accrued − paid − waived on the live installments",
        "loan",
        f"""
        WITH pr AS (
            SELECT loan_id, SUM(debit_fen - credit_fen) AS fen
            FROM journal_lines WHERE account = 'penalty_receivable' AND loan_id IS NOT NULL GROUP BY loan_id
        ), owed AS (
            SELECT i.loan_id, SUM(i.penalty_accrued_fen - i.penalty_paid_fen - i.penalty_waived_fen) AS fen
            FROM installments i JOIN loans l ON {_live("i")} GROUP BY i.loan_id
        )
        SELECT l.id, COALESCE(owed.fen, 0), COALESCE(pr.fen, 0)
        FROM loans l LEFT JOIN pr ON pr.loan_id = l.id LEFT JOIN owed ON owed.loan_id = l.id
        WHERE l.status <> 'charged-off' AND COALESCE(pr.fen, 0) <> COALESCE(owed.fen, 0)
        """,
        lambda o, e, a: f"loan {o}: installments owe {e} fen of penalty but penalty_receivable holds {a} fen",
    ),
    Invariant(
        "credit_matches_journal",
        "the journal's customer_credit balance == the loan's credit balance",
        "loan",
        """
        WITH cc AS (
            SELECT loan_id, SUM(credit_fen - debit_fen) AS fen
            FROM journal_lines WHERE account = 'customer_credit' AND loan_id IS NOT NULL GROUP BY loan_id
        )
        SELECT l.id, l.credit_balance_fen, COALESCE(cc.fen, 0)
        FROM loans l LEFT JOIN cc ON cc.loan_id = l.id
        WHERE COALESCE(cc.fen, 0) <> l.credit_balance_fen
        """,
        lambda o, e, a: f"loan {o}: credit balance is {e} fen but customer_credit holds {a} fen",
    ),
    Invariant(
        "payment_allocations",
        "each posted payment's allocations (not reversed) sum to its amount",
        "payment",
        """
        SELECT p.id, p.amount_fen, COALESCE(SUM(a.amount_fen), 0)
        FROM payments p LEFT JOIN allocations a ON a.payment_id = p.id AND NOT a.reversed
        WHERE p.status = 'posted'
        GROUP BY p.id, p.amount_fen
        HAVING p.amount_fen <> COALESCE(SUM(a.amount_fen), 0)
        """,
        lambda o, e, a: f"payment {o}: amount {e} fen but its allocations sum to {a} fen",
    ),
    Invariant(
        "payment_cash",
        "each posted payment debits cash_clearing by its amount (net of reversals); a reversed one by nothing",
        "payment",
        """
        WITH cash AS (
            SELECT e.payment_id, SUM(jl.debit_fen - jl.credit_fen) AS fen
            FROM journal_entries e JOIN journal_lines jl ON jl.entry_id = e.id
            WHERE e.payment_id IS NOT NULL AND jl.account = 'cash_clearing'
            GROUP BY e.payment_id
        )
        SELECT p.id, CASE WHEN p.status = 'posted' THEN p.amount_fen ELSE 0 END, COALESCE(cash.fen, 0)
        FROM payments p LEFT JOIN cash ON cash.payment_id = p.id
        WHERE COALESCE(cash.fen, 0) <> CASE WHEN p.status = 'posted' THEN p.amount_fen ELSE 0 END
        """,
        lambda o, e, a: f"payment {o}: should bring {e} fen of cash but the journal shows {a} fen",
    ),
    Invariant(
        "entry_balanced",
        "every journal entry has lines and its debits equal its credits",
        "journal_entry",
        """
        SELECT e.id, COALESCE(SUM(jl.debit_fen), 0), COALESCE(SUM(jl.credit_fen), 0)
        FROM journal_entries e LEFT JOIN journal_lines jl ON jl.entry_id = e.id
        GROUP BY e.id
        HAVING COALESCE(SUM(jl.debit_fen), 0) <> COALESCE(SUM(jl.credit_fen), 0) OR COUNT(jl.id) = 0
        """,
        lambda o, e, a: f"journal entry {o}: debits {e} fen, credits {a} fen",
    ),
    Invariant(
        "line_matches_entry",
        "each journal line carries its entry's loan and value date",
        "journal_entry",
        """
        SELECT DISTINCT e.id, NULL, NULL
        FROM journal_entries e JOIN journal_lines jl ON jl.entry_id = e.id
        WHERE jl.value_date <> e.value_date
           OR (jl.loan_id IS NULL) <> (e.loan_id IS NULL)
           OR jl.loan_id <> e.loan_id
        """,
        lambda o, e, a: f"journal entry {o}: a line's loan or value date differs from the entry's",
    ),
    Invariant(
        "orphan_installments",
        "every installment belongs to a schedule version of an existing loan",
        "loan",
        """
        SELECT DISTINCT i.loan_id, NULL, NULL FROM installments i
        WHERE NOT EXISTS (SELECT 1 FROM schedule_versions v
                          WHERE v.loan_id = i.loan_id AND v.version = i.schedule_version)
           OR NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = i.loan_id)
        """,
        lambda o, e, a: f"loan {o}: installments without their loan or schedule version",
    ),
    Invariant(
        "orphan_versions",
        "every schedule version belongs to an existing loan",
        "loan",
        """
        SELECT DISTINCT v.loan_id, NULL, NULL FROM schedule_versions v
        WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = v.loan_id)
        """,
        lambda o, e, a: f"loan {o}: schedule versions without the loan",
    ),
    Invariant(
        "live_version_exists",
        "every loan's live schedule version exists and has installments",
        "loan",
        """
        SELECT l.id, l.schedule_version, NULL FROM loans l
        WHERE NOT EXISTS (SELECT 1 FROM schedule_versions v WHERE v.loan_id = l.id AND v.version = l.schedule_version)
           OR NOT EXISTS (SELECT 1 FROM installments i
                          WHERE i.loan_id = l.id AND i.schedule_version = l.schedule_version)
        """,
        lambda o, e, a: f"loan {o}: live schedule version {e} is missing or has no installments",
    ),
    Invariant(
        "loan_references",
        "every loan's product version, customer and account exist, and every account's customer",
        "loan",
        """
        SELECT l.id, NULL, NULL FROM loans l
        WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = l.product_id AND p.version = l.product_version)
           OR (l.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = l.customer_id))
           OR (l.account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = l.account_id))
        UNION
        SELECT 'account ' || a.id, NULL, NULL FROM accounts a
        WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = a.customer_id)
        """,
        lambda o, e, a: f"loan {o}: its product version, customer or account does not exist",
    ),
    Invariant(
        "orphan_payments",
        "every payment belongs to an existing loan",
        "payment",
        "SELECT p.id, NULL, NULL FROM payments p WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = p.loan_id)",
        lambda o, e, a: f"payment {o}: its loan does not exist",
    ),
    Invariant(
        "orphan_allocations",
        "every allocation belongs to an existing loan and, when funded by a payment, to an existing payment",
        "allocation",
        """
        SELECT a.id, NULL, NULL FROM allocations a
        WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = a.loan_id)
           OR (a.payment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = a.payment_id))
           OR (a.source = 'payment' AND a.payment_id IS NULL)
        """,
        lambda o, e, a: f"allocation {o}: its loan or payment does not exist",
    ),
    Invariant(
        "orphan_journal",
        "every journal line belongs to an entry, and every entry's loan and payment exist",
        "journal_entry",
        """
        SELECT jl.entry_id, NULL, NULL FROM journal_lines jl
        WHERE NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.id = jl.entry_id)
        UNION
        SELECT e.id, NULL, NULL FROM journal_entries e
        WHERE (e.loan_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = e.loan_id))
           OR (e.payment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = e.payment_id))
           OR (e.reverses_entry_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM journal_entries r WHERE r.id = e.reverses_entry_id))
           OR (e.close_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_closes c WHERE c.id = e.close_id))
        """,
        lambda o, e, a: f"journal entry {o}: orphan line, or its loan, payment, reversed entry or close does not exist",
    ),
)


def run_invariant(conn: Connection, invariant: Invariant, *, limit: int) -> tuple[int, list[Violation]]:
    """How many rows break ``invariant`` and the first ``limit`` of them."""
    rows = conn.execute(text(invariant.sql)).all()
    found = [
        Violation(
            check=invariant.name,
            object_type=invariant.object_type,
            object_id=str(r[0]),
            expected=None if r[1] is None else int(r[1]),
            actual=None if r[2] is None else int(r[2]),
            message=invariant.message(
                str(r[0]), None if r[1] is None else int(r[1]), None if r[2] is None else int(r[2])
            ),
        )
        for r in rows[:limit]
    ]
    return len(rows), found
