"""The ledger's invariants as set-based SQL: a few whole-table scans, each returning only the rows that break something.

Checks that read the same tables share one scan: every per-loan balance (schedule, allocations,
journal) comes out of one query that aggregates installments, allocations and journal lines once
each, so verifying a book of a million loans costs a handful of table scans, never a query per
loan. The application layer (:mod:`runoff.app.ledger_check`) turns the rows into findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class Violation:
    """One object that breaks an invariant: what was expected and what the ledger holds (fen)."""

    check: str
    object_type: str
    object_id: str
    expected: int | None
    actual: int | None
    message: str


CHECKS: dict[str, str] = {
    "schedule_principal": "scheduled principal − principal paid − principal waived (live version) == outstanding principal",
    "principal_allocated": "principal paid on the live installments == principal allocated under that version "
    "(plus principal repaid before the ledger's history, on version 1)",
    "receivable_matches_journal": "the journal's loans_receivable == outstanding principal (loans not charged off)",
    "penalty_matches_journal": "the journal's penalty_receivable == penalty accrued − paid − waived on the live version",
    "credit_matches_journal": "the journal's customer_credit == the loan's credit balance",
    "live_version_exists": "every loan's live schedule version exists and has installments",
    "loan_references": "every loan's product version, customer and account exist, and every account's customer",
    "payment_allocations": "each posted payment's allocations (not reversed) sum to its amount",
    "payment_cash": "each posted payment debits cash_clearing by its amount (net of reversals); a reversed one by nothing",
    "entry_balanced": "every journal entry has lines and its debits equal its credits",
    "line_matches_entry": "each journal line carries its entry's loan and value date",
    "orphan_rows": "no installments, schedule versions, payments, allocations or journal lines without their parent",
    "charge_off_booked": "a loan charged off by runoff is charged-off, holds nothing in loans_receivable and "
    "penalty_receivable, and write_offs holds what its charge-off recorded; no write-offs without a charge-off",
    "recoveries_match": "the journal's recoveries for a loan == the recoveries posted on it, only on a charged-off loan",
    "reversal_mirrors_entry": "each reversal entry mirrors the entry it reverses (same loan, value date, payment and "
    "accounts, sides swapped); no entry is reversed twice",
    "reversed_payment_nets_to_zero": "a reversed payment's journal entries net to zero on every account and none of "
    "its allocations stands",
}

_LIVE = "{a}.loan_id = l.id AND {a}.schedule_version = l.schedule_version"

LOANS_SQL = f"""
WITH inst AS (
    SELECT i.loan_id,
           SUM(i.principal_due_fen - i.principal_paid_fen - i.principal_waived_fen) AS principal_left,
           SUM(i.principal_paid_fen) AS principal_paid,
           SUM(i.penalty_accrued_fen - i.penalty_paid_fen - i.penalty_waived_fen) AS penalty_owed,
           COUNT(*) AS n
    FROM installments i JOIN loans l ON {_LIVE.format(a="i")}
    GROUP BY i.loan_id
), alloc AS (
    SELECT a.loan_id, SUM(a.amount_fen) AS principal
    FROM allocations a JOIN loans l ON {_LIVE.format(a="a")}
    WHERE a.component = 'principal' AND NOT a.reversed
    GROUP BY a.loan_id
), jl AS (
    SELECT loan_id,
           SUM(CASE WHEN account = 'loans_receivable' THEN debit_fen - credit_fen ELSE 0 END) AS receivable,
           SUM(CASE WHEN account = 'penalty_receivable' THEN debit_fen - credit_fen ELSE 0 END) AS penalty,
           SUM(CASE WHEN account = 'customer_credit' THEN credit_fen - debit_fen ELSE 0 END) AS credit
    FROM journal_lines
    WHERE loan_id IS NOT NULL AND account IN ('loans_receivable', 'penalty_receivable', 'customer_credit')
    GROUP BY loan_id
), refs AS (
    SELECT l.id,
           CASE WHEN EXISTS (SELECT 1 FROM schedule_versions v
                             WHERE v.loan_id = l.id AND v.version = l.schedule_version) THEN 1 ELSE 0 END AS has_version,
           CASE WHEN EXISTS (SELECT 1 FROM products p WHERE p.id = l.product_id AND p.version = l.product_version)
                 AND (l.customer_id IS NULL OR EXISTS (SELECT 1 FROM customers c WHERE c.id = l.customer_id))
                 AND (l.account_id IS NULL OR EXISTS (SELECT 1 FROM accounts a WHERE a.id = l.account_id))
                THEN 1 ELSE 0 END AS refs_ok
    FROM loans l
), v AS (
    SELECT l.id, l.status, l.outstanding_principal_fen AS outstanding, l.credit_balance_fen AS credit_balance,
           l.schedule_version,
           COALESCE(inst.principal_left, 0) AS principal_left,
           COALESCE(inst.principal_paid, 0) AS principal_paid,
           COALESCE(alloc.principal, 0)
             + CASE WHEN l.schedule_version = 1 THEN l.opening_principal_paid_fen ELSE 0 END AS principal_allocated,
           COALESCE(inst.penalty_owed, 0) AS penalty_owed,
           COALESCE(inst.n, 0) AS installments,
           COALESCE(jl.receivable, 0) AS receivable,
           COALESCE(jl.penalty, 0) AS penalty_booked,
           COALESCE(jl.credit, 0) AS credit_booked,
           refs.has_version, refs.refs_ok
    FROM loans l
    JOIN refs ON refs.id = l.id
    LEFT JOIN inst ON inst.loan_id = l.id
    LEFT JOIN alloc ON alloc.loan_id = l.id
    LEFT JOIN jl ON jl.loan_id = l.id
)
SELECT * FROM v
WHERE principal_left <> outstanding
   OR principal_paid <> principal_allocated
   OR (status <> 'charged-off' AND (receivable <> outstanding OR penalty_booked <> penalty_owed))
   OR credit_booked <> credit_balance
   OR has_version = 0 OR installments = 0 OR refs_ok = 0
UNION ALL
SELECT 'account ' || a.id, 'account', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0
FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = a.customer_id)
"""

PAYMENTS_SQL = """
WITH alloc AS (
    SELECT payment_id, SUM(amount_fen) AS fen FROM allocations
    WHERE payment_id IS NOT NULL AND NOT reversed GROUP BY payment_id
), cash AS (
    SELECT e.payment_id, SUM(jl.debit_fen - jl.credit_fen) AS fen
    FROM journal_entries e JOIN journal_lines jl ON jl.entry_id = e.id
    WHERE e.payment_id IS NOT NULL AND jl.account = 'cash_clearing'
    GROUP BY e.payment_id
)
SELECT p.id, p.status, p.amount_fen, COALESCE(alloc.fen, 0), COALESCE(cash.fen, 0)
FROM payments p LEFT JOIN alloc ON alloc.payment_id = p.id LEFT JOIN cash ON cash.payment_id = p.id
WHERE (p.status = 'posted' AND (COALESCE(alloc.fen, 0) <> p.amount_fen OR COALESCE(cash.fen, 0) <> p.amount_fen))
   OR (p.status <> 'posted' AND COALESCE(cash.fen, 0) <> 0)
"""

JOURNAL_SQL = """
SELECT e.id, COALESCE(SUM(jl.debit_fen), 0), COALESCE(SUM(jl.credit_fen), 0), COUNT(jl.id),
       SUM(CASE WHEN jl.value_date <> e.value_date OR (jl.loan_id IS NULL) <> (e.loan_id IS NULL)
                     OR jl.loan_id <> e.loan_id THEN 1 ELSE 0 END)
FROM journal_entries e LEFT JOIN journal_lines jl ON jl.entry_id = e.id
GROUP BY e.id
HAVING COALESCE(SUM(jl.debit_fen), 0) <> COALESCE(SUM(jl.credit_fen), 0) OR COUNT(jl.id) = 0
    OR SUM(CASE WHEN jl.value_date <> e.value_date OR (jl.loan_id IS NULL) <> (e.loan_id IS NULL)
                     OR jl.loan_id <> e.loan_id THEN 1 ELSE 0 END) > 0
"""

ORPHANS_SQL = """
SELECT 'installments', s.loan_id FROM (SELECT DISTINCT loan_id, schedule_version FROM installments) s
WHERE NOT EXISTS (SELECT 1 FROM schedule_versions v WHERE v.loan_id = s.loan_id AND v.version = s.schedule_version)
   OR NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = s.loan_id)
UNION ALL
SELECT 'schedule_versions', v.loan_id FROM schedule_versions v
WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = v.loan_id)
UNION ALL
SELECT 'payments', CAST(p.id AS VARCHAR(32)) FROM payments p
WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = p.loan_id)
UNION ALL
SELECT 'allocations', CAST(a.id AS VARCHAR(32)) FROM allocations a
WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = a.loan_id)
   OR (a.payment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = a.payment_id))
   OR (a.source = 'payment' AND a.payment_id IS NULL)
UNION ALL
SELECT 'journal_lines', CAST(s.entry_id AS VARCHAR(32)) FROM (SELECT DISTINCT entry_id FROM journal_lines) s
WHERE NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.id = s.entry_id)
UNION ALL
SELECT 'journal_entries', CAST(e.id AS VARCHAR(32)) FROM journal_entries e
WHERE (e.loan_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = e.loan_id))
   OR (e.payment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = e.payment_id))
   OR (e.reverses_entry_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM journal_entries r WHERE r.id = e.reverses_entry_id))
   OR (e.close_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_closes c WHERE c.id = e.close_id))
"""


CHARGE_OFFS_SQL = """
WITH co AS (
    SELECT loan_id, principal_fen + penalty_fen AS written FROM charge_offs
), rec AS (
    SELECT loan_id, SUM(amount_fen) AS fen FROM payments
    WHERE kind = 'recovery' AND status = 'posted'
    GROUP BY loan_id
), booked AS (
    SELECT loan_id,
           SUM(CASE WHEN account = 'write_offs' THEN debit_fen - credit_fen ELSE 0 END) AS written_off,
           SUM(CASE WHEN account = 'recoveries' THEN credit_fen - debit_fen ELSE 0 END) AS recovered
    FROM journal_lines
    WHERE account IN ('write_offs', 'recoveries') AND loan_id IS NOT NULL
    GROUP BY loan_id
), on_books AS (
    SELECT jl.loan_id,
           SUM(CASE WHEN jl.account = 'loans_receivable' THEN jl.debit_fen - jl.credit_fen ELSE 0 END) AS receivable,
           SUM(CASE WHEN jl.account = 'penalty_receivable' THEN jl.debit_fen - jl.credit_fen ELSE 0 END) AS penalty
    FROM co JOIN journal_lines jl ON jl.loan_id = co.loan_id
    WHERE jl.account IN ('loans_receivable', 'penalty_receivable')
    GROUP BY jl.loan_id
), ids AS (
    SELECT loan_id FROM co UNION SELECT loan_id FROM rec UNION SELECT loan_id FROM booked
), v AS (
    SELECT ids.loan_id, COALESCE(l.status, 'missing') AS status,
           CASE WHEN co.loan_id IS NULL THEN 0 ELSE 1 END AS charged_off,
           COALESCE(co.written, 0) AS written, COALESCE(booked.written_off, 0) AS written_off,
           COALESCE(ob.receivable, 0) AS receivable, COALESCE(ob.penalty, 0) AS penalty,
           COALESCE(rec.fen, 0) AS recovered, COALESCE(booked.recovered, 0) AS recovered_booked
    FROM ids
    LEFT JOIN loans l ON l.id = ids.loan_id
    LEFT JOIN co ON co.loan_id = ids.loan_id
    LEFT JOIN booked ON booked.loan_id = ids.loan_id
    LEFT JOIN on_books ob ON ob.loan_id = ids.loan_id
    LEFT JOIN rec ON rec.loan_id = ids.loan_id
)
SELECT * FROM v
WHERE (charged_off = 1 AND (status <> 'charged-off' OR receivable <> 0 OR penalty <> 0 OR written_off <> written))
   OR (charged_off = 0 AND written_off <> 0)
   OR recovered <> recovered_booked
   OR (recovered <> 0 AND status <> 'charged-off')
"""

REVERSALS_SQL = """
WITH r AS (
    SELECT e.id, e.reverses_entry_id AS original
    FROM journal_entries e JOIN journal_entries o ON o.id = e.reverses_entry_id
), net AS (
    SELECT r.id, jl.account, jl.debit_fen - jl.credit_fen AS fen FROM r JOIN journal_lines jl ON jl.entry_id = r.id
    UNION ALL
    SELECT r.id, jl.account, jl.debit_fen - jl.credit_fen FROM r JOIN journal_lines jl ON jl.entry_id = r.original
), off AS (
    SELECT id, account FROM net GROUP BY id, account HAVING SUM(fen) <> 0
), rp AS (
    SELECT id FROM payments WHERE status = 'reversed'
), payment_net AS (
    SELECT e.payment_id, jl.account
    FROM rp JOIN journal_entries e ON e.payment_id = rp.id JOIN journal_lines jl ON jl.entry_id = e.id
    GROUP BY e.payment_id, jl.account
    HAVING SUM(jl.debit_fen - jl.credit_fen) <> 0
)
SELECT 'lines', id, COUNT(*) FROM off GROUP BY id
UNION ALL
SELECT 'header', e.id, 1
FROM journal_entries e JOIN journal_entries o ON o.id = e.reverses_entry_id
WHERE e.kind <> 'reversal' OR (e.loan_id IS NULL) <> (o.loan_id IS NULL) OR e.loan_id <> o.loan_id
   OR e.value_date <> o.value_date OR COALESCE(e.payment_id, -1) <> COALESCE(o.payment_id, -1)
UNION ALL
SELECT 'twice', reverses_entry_id, COUNT(*) FROM journal_entries
WHERE reverses_entry_id IS NOT NULL GROUP BY reverses_entry_id HAVING COUNT(*) > 1
UNION ALL
SELECT 'payment_journal', payment_id, COUNT(*) FROM payment_net GROUP BY payment_id
UNION ALL
SELECT 'payment_allocations', a.payment_id, SUM(a.amount_fen)
FROM rp JOIN allocations a ON a.payment_id = rp.id WHERE NOT a.reversed GROUP BY a.payment_id
"""


def _v(check: str, kind: str, oid: Any, expected: Any, actual: Any, message: str) -> Violation:
    return Violation(
        check,
        kind,
        str(oid),
        None if expected is None else int(expected),
        None if actual is None else int(actual),
        message,
    )


def _loan_violations(row: Sequence[Any]) -> Iterator[Violation]:
    (oid, status, outstanding, credit, version, left, paid, allocated, penalty_owed, n, receivable, penalty_booked,
     credit_booked, has_version, refs_ok) = row  # fmt: skip
    if status == "account":
        yield _v(
            "loan_references", "account", oid[len("account ") :], None, None, f"{oid}: its customer does not exist"
        )
        return
    if left != outstanding:
        yield _v("schedule_principal", "loan", oid, outstanding, left,
                 f"loan {oid}: outstanding principal is {outstanding} fen but its live installments leave {left} fen")  # fmt: skip
    if paid != allocated:
        yield _v("principal_allocated", "loan", oid, paid, allocated,
                 f"loan {oid}: installments show {paid} fen of principal paid but allocations account for {allocated} fen")  # fmt: skip
    if status != "charged-off" and receivable != outstanding:
        yield _v("receivable_matches_journal", "loan", oid, outstanding, receivable,
                 f"loan {oid}: outstanding principal is {outstanding} fen but loans_receivable holds {receivable} fen")  # fmt: skip
    if status != "charged-off" and penalty_booked != penalty_owed:
        yield _v("penalty_matches_journal", "loan", oid, penalty_owed, penalty_booked,
                 f"loan {oid}: installments owe {penalty_owed} fen of penalty but penalty_receivable holds {penalty_booked} fen")  # fmt: skip
    if credit_booked != credit:
        yield _v("credit_matches_journal", "loan", oid, credit, credit_booked,
                 f"loan {oid}: credit balance is {credit} fen but customer_credit holds {credit_booked} fen")  # fmt: skip
    if not has_version or not n:
        yield _v("live_version_exists", "loan", oid, version, None,
                 f"loan {oid}: live schedule version {version} is missing or has no installments")  # fmt: skip
    if not refs_ok:
        yield _v(
            "loan_references",
            "loan",
            oid,
            None,
            None,
            f"loan {oid}: its product version, customer or account does not exist",
        )


def _payment_violations(row: Sequence[Any]) -> Iterator[Violation]:
    oid, status, amount, allocated, cash = row
    expected_cash = amount if status == "posted" else 0
    if status == "posted" and allocated != amount:
        yield _v("payment_allocations", "payment", oid, amount, allocated,
                 f"payment {oid}: amount {amount} fen but its allocations sum to {allocated} fen")  # fmt: skip
    if cash != expected_cash:
        yield _v("payment_cash", "payment", oid, expected_cash, cash,
                 f"payment {oid}: should bring {expected_cash} fen of cash but the journal shows {cash} fen")  # fmt: skip


def _journal_violations(row: Sequence[Any]) -> Iterator[Violation]:
    oid, debit, credit, lines, mismatched = row
    if debit != credit or not lines:
        yield _v("entry_balanced", "journal_entry", oid, debit, credit,
                 f"journal entry {oid}: debits {debit} fen, credits {credit} fen over {lines} lines")  # fmt: skip
    if mismatched:
        yield _v("line_matches_entry", "journal_entry", oid, None, None,
                 f"journal entry {oid}: {mismatched} lines carry another loan or value date than the entry")  # fmt: skip


def _orphan_violations(row: Sequence[Any]) -> Iterator[Violation]:
    table, oid = row
    yield _v("orphan_rows", table, oid, None, None, f"{table} {oid}: its parent row does not exist")


def _charge_off_violations(row: Sequence[Any]) -> Iterator[Violation]:
    oid, status, charged_off, written, written_off, receivable, penalty, recovered, recovered_booked = row
    if charged_off:
        problems = []
        if status != "charged-off":
            problems.append(f"it is {status}")
        if receivable or penalty:
            problems.append(f"loans_receivable holds {receivable} fen and penalty_receivable {penalty} fen")
        if written_off != written:
            problems.append(f"write_offs hold {written_off} fen where the charge-off wrote off {written} fen")
        if problems:
            yield _v("charge_off_booked", "loan", oid, written, written_off,
                     f"loan {oid} was charged off but " + "; ".join(problems))  # fmt: skip
    elif written_off:
        yield _v("charge_off_booked", "loan", oid, 0, written_off,
                 f"loan {oid}: write_offs hold {written_off} fen but the loan has no charge-off")  # fmt: skip
    if recovered != recovered_booked:
        yield _v("recoveries_match", "loan", oid, recovered, recovered_booked,
                 f"loan {oid}: {recovered} fen of recoveries posted but the recoveries account holds {recovered_booked} fen")  # fmt: skip
    elif recovered and status != "charged-off":
        yield _v("recoveries_match", "loan", oid, None, recovered,
                 f"loan {oid} is {status} but has {recovered} fen of recoveries; only a charged-off loan has them")  # fmt: skip


def _reversal_violations(row: Sequence[Any]) -> Iterator[Violation]:
    problem, oid, n = row
    if problem == "lines":
        yield _v("reversal_mirrors_entry", "journal_entry", oid, None, None,
                 f"reversal entry {oid}: {n} accounts do not mirror the entry it reverses")  # fmt: skip
    elif problem == "header":
        yield _v("reversal_mirrors_entry", "journal_entry", oid, None, None,
                 f"reversal entry {oid}: its kind, loan, value date or payment differs from the entry it reverses")  # fmt: skip
    elif problem == "twice":
        yield _v("reversal_mirrors_entry", "journal_entry", oid, 1, n,
                 f"journal entry {oid} is reversed {n} times")  # fmt: skip
    elif problem == "payment_journal":
        yield _v("reversed_payment_nets_to_zero", "payment", oid, None, None,
                 f"payment {oid} is reversed but its journal entries leave a balance on {n} accounts")  # fmt: skip
    else:
        yield _v("reversed_payment_nets_to_zero", "payment", oid, 0, n,
                 f"payment {oid} is reversed but {n} fen of its allocations still stand")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scan:
    """One set-based query and how its rows become violations."""

    name: str
    sql: str
    violations: Callable[[Sequence[Any]], Iterator[Violation]]


SCANS: tuple[Scan, ...] = (
    Scan("loans", LOANS_SQL, _loan_violations),
    Scan("payments", PAYMENTS_SQL, _payment_violations),
    Scan("journal", JOURNAL_SQL, _journal_violations),
    Scan("orphans", ORPHANS_SQL, _orphan_violations),
    Scan("charge_offs", CHARGE_OFFS_SQL, _charge_off_violations),
    Scan("reversals", REVERSALS_SQL, _reversal_violations),
)


def run_scans(conn: Connection, *, limit: int) -> tuple[dict[str, int], list[Violation]]:
    """Violation counts per check and the first ``limit`` violations of each."""
    counts = dict.fromkeys(CHECKS, 0)
    kept: list[Violation] = []
    for scan in SCANS:
        for row in conn.execute(text(scan.sql)):
            for violation in scan.violations(tuple(row)):
                counts[violation.check] += 1
                if counts[violation.check] <= limit:
                    kept.append(violation)
    return counts, kept
