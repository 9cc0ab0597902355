"""The double-entry journal (会计分录): every money movement as a balanced entry on the chart of accounts.

An entry is refused before it is written unless its debits equal its credits. Each line carries
its loan and value date, so any account's balance for one loan or for the whole book can be read
as of a past date (:func:`balances_as_of`). Entries are never changed: a correction is a new
entry that mirrors the old one (:func:`reversal_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Connection, func, select

from runoff.errors import InvariantBroken
from runoff.store.ledger.models import (
    ACCOUNT_KINDS,
    EntryKind,
    LedgerAccount,
    journal_entries,
    journal_lines,
)
from runoff.store.ledger.rowsets import insert_rows
from runoff.store.ledger.sequences import reserve_ids


@dataclass(frozen=True, slots=True)
class JournalLine:
    """One side of an entry: ``debit_fen`` or ``credit_fen`` on ``account`` (the other is 0)."""

    account: LedgerAccount
    debit_fen: int = 0
    credit_fen: int = 0


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced set of lines for one loan (or none, for book-level entries) on one value date."""

    kind: EntryKind
    value_date: date
    lines: tuple[JournalLine, ...]
    loan_id: str | None = None
    payment_id: int | None = None
    schedule_version: int | None = None
    reverses_entry_id: int | None = None
    close_id: int | None = None
    memo: str | None = None

    @property
    def debit_fen(self) -> int:
        return sum(line.debit_fen for line in self.lines)

    @property
    def credit_fen(self) -> int:
        return sum(line.credit_fen for line in self.lines)


@dataclass(slots=True)
class EntryBuilder:
    """Collects debits and credits by account, netting nothing: zero amounts are dropped."""

    kind: EntryKind
    value_date: date
    loan_id: str | None = None
    payment_id: int | None = None
    schedule_version: int | None = None
    memo: str | None = None
    _lines: list[JournalLine] = field(default_factory=list)

    def debit(self, account: LedgerAccount, amount_fen: int) -> EntryBuilder:
        if amount_fen < 0:
            return self.credit(account, -amount_fen)
        if amount_fen:
            self._lines.append(JournalLine(account, debit_fen=amount_fen))
        return self

    def credit(self, account: LedgerAccount, amount_fen: int) -> EntryBuilder:
        if amount_fen < 0:
            return self.debit(account, -amount_fen)
        if amount_fen:
            self._lines.append(JournalLine(account, credit_fen=amount_fen))
        return self

    @property
    def is_empty(self) -> bool:
        return not self._lines

    def build(self) -> JournalEntry:
        return JournalEntry(
            kind=self.kind,
            value_date=self.value_date,
            lines=tuple(self._lines),
            loan_id=self.loan_id,
            payment_id=self.payment_id,
            schedule_version=self.schedule_version,
            memo=self.memo,
        )


def check_balanced(entry: JournalEntry) -> None:
    """Refuse an entry whose debits differ from its credits, or that moves nothing."""
    if not entry.lines or entry.debit_fen != entry.credit_fen:
        raise InvariantBroken(
            f"journal entry {entry.kind.value} for loan {entry.loan_id} on {entry.value_date.isoformat()} "
            f"does not balance: debits {entry.debit_fen} fen, credits {entry.credit_fen} fen"
        )
    for line in entry.lines:
        if line.debit_fen < 0 or line.credit_fen < 0 or (line.debit_fen and line.credit_fen):
            raise InvariantBroken(f"journal line {line} must have exactly one positive side")


def post_entries(
    conn: Connection,
    entries: Sequence[JournalEntry],
    *,
    actor: str,
    posted_at: datetime,
    ids: Sequence[int] | None = None,
) -> list[int]:
    """Write ``entries`` (checked balanced) in two set-based inserts; returns their ids in order.

    ``ids``: ids reserved beforehand (``sequences.reserve_id_blocks``), at least one per entry.
    """
    if not entries:
        return []
    for entry in entries:
        check_balanced(entry)
    if ids is None or len(ids) < len(entries):
        ids = reserve_ids(conn, journal_entries, len(entries))
    ids = list(ids[: len(entries)])
    insert_rows(
        conn,
        journal_entries,
        [
            {
                "id": entry_id,
                "loan_id": e.loan_id,
                "value_date": e.value_date,
                "posted_at": posted_at,
                "kind": e.kind.value,
                "payment_id": e.payment_id,
                "schedule_version": e.schedule_version,
                "reverses_entry_id": e.reverses_entry_id,
                "close_id": e.close_id,
                "actor": actor,
                "memo": e.memo,
            }
            for entry_id, e in zip(ids, entries, strict=True)
        ],
    )
    insert_rows(
        conn,
        journal_lines,
        [
            {
                "entry_id": entry_id,
                "loan_id": e.loan_id,
                "account": line.account.value,
                "value_date": e.value_date,
                "debit_fen": line.debit_fen,
                "credit_fen": line.credit_fen,
            }
            for entry_id, e in zip(ids, entries, strict=True)
            for line in e.lines
        ],
    )
    return ids


def load_entries(conn: Connection, entry_ids: Iterable[int]) -> dict[int, JournalEntry]:
    """Entries by id, with their lines."""
    wanted = list(entry_ids)
    if not wanted:
        return {}
    heads = conn.execute(select(journal_entries).where(journal_entries.c.id.in_(wanted))).mappings().all()
    lines: dict[int, list[JournalLine]] = {}
    rows = conn.execute(
        select(journal_lines).where(journal_lines.c.entry_id.in_(wanted)).order_by(journal_lines.c.id)
    ).mappings()
    for row in rows:
        lines.setdefault(row["entry_id"], []).append(
            JournalLine(LedgerAccount(row["account"]), int(row["debit_fen"]), int(row["credit_fen"]))
        )
    return {
        h["id"]: JournalEntry(
            kind=EntryKind(h["kind"]),
            value_date=h["value_date"],
            lines=tuple(lines.get(h["id"], ())),
            loan_id=h["loan_id"],
            payment_id=h["payment_id"],
            schedule_version=h["schedule_version"],
            reverses_entry_id=h["reverses_entry_id"],
            close_id=h["close_id"],
            memo=h["memo"],
        )
        for h in heads
    }


def reversal_of(entry_id: int, entry: JournalEntry, *, value_date: date, memo: str | None = None) -> JournalEntry:
    """The mirror of ``entry`` (debits become credits) dated ``value_date``, pointing back at it."""
    return JournalEntry(
        kind=EntryKind.REVERSAL,
        value_date=value_date,
        lines=tuple(JournalLine(line.account, line.credit_fen, line.debit_fen) for line in entry.lines),
        loan_id=entry.loan_id,
        payment_id=entry.payment_id,
        schedule_version=entry.schedule_version,
        reverses_entry_id=entry_id,
        memo=memo or f"reverses {entry.kind.value} entry {entry_id}",
    )


def natural_balance(account: LedgerAccount, debit_fen: int, credit_fen: int) -> int:
    """Balance on the account's normal side: debit − credit for assets and expenses, credit − debit otherwise."""
    if ACCOUNT_KINDS[account] in ("asset", "expense"):
        return debit_fen - credit_fen
    return credit_fen - debit_fen


def balances_as_of(
    conn: Connection, *, as_of: date | None = None, loan_id: str | None = None
) -> dict[LedgerAccount, int]:
    """Each account's natural balance in fen from lines with value date on or before ``as_of`` (all if None).

    ``loan_id`` restricts to one loan's lines; without it, the whole book (a trial balance, 试算平衡).
    """
    query = select(
        journal_lines.c.account,
        func.coalesce(func.sum(journal_lines.c.debit_fen), 0),
        func.coalesce(func.sum(journal_lines.c.credit_fen), 0),
    ).group_by(journal_lines.c.account)
    if as_of is not None:
        query = query.where(journal_lines.c.value_date <= as_of)
    if loan_id is not None:
        query = query.where(journal_lines.c.loan_id == loan_id)
    out = {account: 0 for account in LedgerAccount}
    for account, debit, credit in conn.execute(query):
        out[LedgerAccount(account)] = natural_balance(LedgerAccount(account), int(debit), int(credit))
    return out


def totals_by_account(entries: Iterable[JournalEntry]) -> Mapping[LedgerAccount, tuple[int, int]]:
    """(debits, credits) per account over ``entries``: what a batch is about to post."""
    out: dict[LedgerAccount, tuple[int, int]] = {}
    for e in entries:
        for line in e.lines:
            d, c = out.get(line.account, (0, 0))
            out[line.account] = (d + line.debit_fen, c + line.credit_fen)
    return out
