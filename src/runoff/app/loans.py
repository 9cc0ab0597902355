"""Loan use cases: open a loan, read its position and balances, re-schedule it (and reverse that), quote.

Opening a loan (放款) writes, atomically: the product version, the loan, its schedule version 1
and installments, the disbursement journal entry (Dr loans_receivable, Cr cash_clearing) and an
audit record. A re-schedule (展期 / 债务重组) archives the live version and makes a new one live;
it can be reversed while no payment or credit has been allocated under the new version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, not_, select

from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from runoff.money import from_minor, parse_amount, quantize, to_minor
from runoff.servicing.delinquency import Bucket, bucket_of, days_past_due
from runoff.servicing.position import ZERO, LoanPosition
from runoff.servicing.product import Component, Method, Product
from runoff.servicing.quotes import Quote, early_settlement, extension, restructure
from runoff.servicing.schedule import Schedule, build_schedule
from runoff.store.ledger.journal import (
    EntryBuilder,
    JournalEntry,
    balances_as_of,
    load_entries,
    post_entries,
    reversal_of,
)
from runoff.store.ledger.models import (
    EntryKind,
    LedgerAccount,
    LoanStatus,
    accounts,
    customers,
    journal_entries,
)
from runoff.store.ledger.repository import LoanRecord, ScheduleVersionRecord, audit_entry, fen_of
from runoff.store.ledger.unit_of_work import UnitOfWork

MAX_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class OpenedLoan:
    """A loan just opened: its id, the product version it was written on and its schedule."""

    loan_id: str
    product_id: str
    product_version: int
    principal: Decimal
    start_date: date
    term: int
    schedule: Schedule
    customer_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoanView:
    """A loan as of a date: its row, live position, schedule versions, balances and delinquency."""

    record: LoanRecord
    position: LoanPosition
    versions: tuple[ScheduleVersionRecord, ...]
    balances: dict[LedgerAccount, Decimal]
    as_of: date
    days_past_due: int
    bucket: Bucket


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """The result of applying or reversing a schedule version."""

    loan_id: str
    version: int  # the version now live
    previous_version: int
    replayed: bool = False


def new_loan_id() -> str:
    """A fresh loan id (the caller may also choose one)."""
    return "L" + uuid.uuid4().hex[:15].upper()


def open_loan(
    *,
    product: Product,
    principal: Decimal | str | int,
    term: int,
    start_date: date,
    actor: str,
    uow: UnitOfWork,
    loan_id: str | None = None,
    customer_id: str | None = None,
    account_id: str | None = None,
) -> OpenedLoan:
    """Open a loan of ``principal`` over ``term`` periods from ``start_date`` on ``product``, atomically."""
    amount = principal if isinstance(principal, Decimal) else parse_amount(principal, field="principal")
    parse_amount(amount, field="principal")
    if not product.min_principal <= amount <= product.max_principal:
        raise InvalidInput(
            f"`principal`: {amount} is not allowed by product {product.id}; expected "
            f"{product.min_principal} to {product.max_principal}",
            field="principal",
        )
    if term not in product.terms:
        offered = ", ".join(str(t) for t in product.terms)
        raise InvalidInput(
            f"`term`: {term} is not offered by product {product.id}; expected one of {offered}", field="term"
        )
    loan_id = loan_id or new_loan_id()
    for name, value in (("loan", loan_id), ("customer", customer_id), ("account", account_id)):
        if value is not None and not (0 < len(value) <= MAX_ID_LENGTH):
            raise InvalidInput(
                f"`{name}`: {value!r} is not allowed; expected 1 to {MAX_ID_LENGTH} characters", field=name
            )
    schedule = build_schedule(product, principal=amount, term=term, start_date=start_date)

    with uow:
        ledger = uow.ledger
        now = uow.now()
        if ledger.loan(loan_id) is not None:
            raise Conflict(f"`loan`: {loan_id!r} already exists; choose another id or leave it out", field="loan")
        _ensure_party(uow, customer_id=customer_id, account_id=account_id, opened_on=start_date)
        version = ledger.register_product(product, now=now)
        principal_fen = to_minor(amount)
        cap = product.penalty.cap_rate_of_principal
        ledger.insert_loan(
            {
                "id": loan_id,
                "customer_id": customer_id,
                "account_id": account_id,
                "product_id": product.id,
                "product_version": version,
                "principal_fen": principal_fen,
                "start_date": start_date,
                "term": term,
                "schedule_version": 1,
                "status": LoanStatus.OPEN.value,
                "outstanding_principal_fen": to_minor(schedule.total_principal),
                "oldest_unpaid_due_date": schedule.installments[0].due_date,
                "penalty_cap_fen": None if cap is None else to_minor(quantize(cap * amount, product.rounding.mode)),
                "penalty_accrued_until": start_date,
                "created_at": now,
                "updated_at": now,
            }
        )
        _insert_version(uow, loan_id, 1, schedule, reason="origination", actor=actor, parent=None, key=None)
        entries = [
            EntryBuilder(EntryKind.DISBURSEMENT, start_date, loan_id=loan_id, schedule_version=1)
            .debit(LedgerAccount.LOANS_RECEIVABLE, principal_fen)
            .credit(LedgerAccount.CASH_CLEARING, principal_fen)
            .build(),
            *_capitalization_entries(loan_id, 1, schedule),
        ]
        post_entries(uow.connection, entries, actor=actor, posted_at=now)
        ledger.append_audit(
            [
                _audit(
                    uow,
                    actor,
                    "loan.opened",
                    "loan",
                    loan_id,
                    {
                        "product": f"{product.id}@{version}",
                        "principal": str(amount),
                        "term": term,
                        "start_date": start_date.isoformat(),
                        "customer_id": customer_id,
                        "account_id": account_id,
                    },
                )
            ]
        )
        uow.commit()
    return OpenedLoan(
        loan_id=loan_id,
        product_id=product.id,
        product_version=version,
        principal=amount,
        start_date=start_date,
        term=term,
        schedule=schedule,
        customer_id=customer_id,
        account_id=account_id,
    )


def _ensure_party(uow: UnitOfWork, *, customer_id: str | None, account_id: str | None, opened_on: date) -> None:
    """Create the customer and credit-line account on first sight (an account needs its customer)."""
    conn = uow.connection
    now = uow.now()
    if customer_id is not None:
        found = conn.execute(select(customers.c.id).where(customers.c.id == customer_id)).first()
        if found is None:
            conn.execute(customers.insert().values(id=customer_id, created_at=now))
    if account_id is not None:
        row = conn.execute(select(accounts.c.customer_id).where(accounts.c.id == account_id)).first()
        if row is None:
            if customer_id is None:
                raise InvalidInput(f"`account`: {account_id!r} is new; give its `customer` too", field="account")
            conn.execute(
                accounts.insert().values(id=account_id, customer_id=customer_id, opened_on=opened_on, created_at=now)
            )
        elif customer_id is not None and row[0] != customer_id:
            raise Conflict(
                f"`account`: {account_id!r} belongs to customer {row[0]!r}, not {customer_id!r}", field="account"
            )


def _insert_version(
    uow: UnitOfWork,
    loan_id: str,
    version: int,
    schedule: Schedule,
    *,
    reason: str,
    actor: str,
    parent: int | None,
    key: str | None,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
) -> None:
    uow.ledger.insert_schedule_version(
        {
            "loan_id": loan_id,
            "version": version,
            "reason": reason,
            "created_at": uow.now(),
            "created_by": actor,
            "idempotency_key": key,
            "parent_version": parent,
            "principal_fen": to_minor(schedule.principal),
            "start_date": schedule.start_date,
            "term": len(schedule.installments),
            "method": schedule.method.value,
            "annual_rate": None if annual_rate is None else str(annual_rate),
            "fee_rate": None if fee_rate is None else str(fee_rate),
        }
    )
    uow.ledger.insert_installments(loan_id, version, schedule)


def _capitalization_entries(loan_id: str, version: int, schedule: Schedule) -> list[JournalEntry]:
    """Interest a capitalising grace period adds to principal, booked on the day it is added (资本化)."""
    return [
        EntryBuilder(EntryKind.CAPITALIZATION, i.due_date, loan_id=loan_id, schedule_version=version)
        .debit(LedgerAccount.LOANS_RECEIVABLE, to_minor(i.capitalized))
        .credit(LedgerAccount.INTEREST_INCOME, to_minor(i.capitalized))
        .build()
        for i in schedule.installments
        if i.capitalized > 0
    ]


def _audit(
    uow: UnitOfWork, actor: str, action: str, object_type: str, object_id: str, details: dict[str, Any]
) -> dict[str, Any]:
    return audit_entry(uow.now(), actor, action, object_type, object_id, details)


# --- reading -------------------------------------------------------------------------------------------------------


def read_position(loan_id: str, *, uow: UnitOfWork) -> LoanPosition:
    """The loan's servicing position on its live schedule version."""
    with uow:
        return uow.ledger.position(loan_id)


def balance_as_of(loan_id: str, as_of: date, *, uow: UnitOfWork) -> dict[LedgerAccount, Decimal]:
    """Each account's balance for ``loan_id`` from journal lines with value date on or before ``as_of``.

    loans_receivable is the principal outstanding that day; penalty_receivable the penalty charged
    and unpaid; customer_credit the credit held.
    """
    with uow:
        uow.ledger.require_loan(loan_id)
        fen = balances_as_of(uow.connection, as_of=as_of, loan_id=loan_id)
    return {account: from_minor(amount) for account, amount in fen.items()}


def show_loan(loan_id: str, *, as_of: date, uow: UnitOfWork) -> LoanView:
    """The loan as of ``as_of``: live position, versions, journal balances and delinquency that day."""
    with uow:
        ledger = uow.ledger
        record = ledger.require_loan(loan_id)
        position = ledger.positions([record])[loan_id]
        versions = tuple(ledger.schedule_versions_of(loan_id))
        fen = balances_as_of(uow.connection, as_of=as_of, loan_id=loan_id)
    dpd = days_past_due(position, as_of)
    return LoanView(
        record=record,
        position=position,
        versions=versions,
        balances={account: from_minor(amount) for account, amount in fen.items()},
        as_of=as_of,
        days_past_due=dpd,
        bucket=bucket_of(dpd),
    )


# --- re-scheduling -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrears:
    """What the old schedule still owes that stays due, on ``due_date``, under the new one (a quote's ``due_now``).

    It becomes installment 0 of the new version. Carried penalty is carried as a fee: penalty is
    a pure function of the schedule (recomputed by day), so a carried amount cannot live in the
    penalty columns; its booked part is reclassified (Dr penalty_income, Cr penalty_receivable)
    and it is income again when paid, like any fee.
    """

    due_date: date
    interest: Decimal = ZERO
    fee: Decimal = ZERO
    penalty: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.interest + self.fee + self.penalty


def apply_schedule(
    loan_id: str,
    new_schedule: Schedule,
    *,
    reason: str,
    actor: str,
    uow: UnitOfWork,
    idempotency_key: str | None = None,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
    carried: Arrears | None = None,
    capitalized_interest: Decimal = ZERO,
    capitalized_fee: Decimal = ZERO,
    as_of: date | None = None,
    basis: LoanPosition | None = None,
) -> ScheduleChange:
    """Archive the live schedule version and make ``new_schedule`` live (展期 / 债务重组), atomically.

    ``basis``: the position the new schedule was quoted on. When given, the loan's position read
    under its lock must still equal it; a payment, close or repost posted since the quote is
    refused with a Conflict (quote again), rather than re-scheduling on balances that have moved.

    ``new_schedule.principal`` replaces the principal outstanding plus ``capitalized_interest`` and
    ``capitalized_fee`` (overdue amounts added to principal: Dr loans_receivable, Cr interest_income /
    fee_income); what it falls short of that is a haircut (Dr waivers, Cr loans_receivable). Without
    the capitalised split, a new principal above the outstanding is booked as capitalised interest.
    ``carried`` arrears stay due (installment 0); penalty booked and not carried is waived
    (Dr waivers, Cr penalty_receivable). Entries are
    dated ``as_of`` (default: the new schedule's start). The same ``idempotency_key`` again
    returns the first change; on another loan it is refused.
    """
    with uow:
        ledger = uow.ledger
        now = uow.now()
        if idempotency_key is not None:
            earlier = ledger.schedule_version_by_key(idempotency_key)
            if earlier is not None:
                if earlier.loan_id != loan_id:
                    raise IdempotencyConflict(
                        f"`idempotency_key`: {idempotency_key!r} was already used for loan {earlier.loan_id}",
                        field="idempotency_key",
                        details={"idempotency_key": idempotency_key},
                    )
                return ScheduleChange(loan_id, earlier.version, earlier.parent_version or 0, replayed=True)
        record = ledger.require_loan(loan_id, lock=True)
        if record.status != LoanStatus.OPEN.value:
            raise Conflict(f"`loan`: {loan_id} is {record.status}; only an open loan can be re-scheduled", field="loan")
        if not new_schedule.installments:
            raise InvalidInput("`schedule`: the new schedule has no installments", field="schedule")
        if carried is not None and min(carried.interest, carried.fee, carried.penalty) < 0:
            raise InvalidInput(
                f"`carried`: {carried} has a negative amount; expected amounts 0 or more", field="carried"
            )
        position = ledger.positions([record])[loan_id]
        if basis is not None and position != basis:
            raise Conflict(
                f"`loan`: {loan_id} changed after it was quoted (a payment, daily close or repost was posted "
                f"meanwhile: principal outstanding now {position.outstanding_principal}, quoted on "
                f"{basis.outstanding_principal}); quote again on the current position",
                field="loan",
            )
        old = record.schedule_version
        version = max(v.version for v in ledger.schedule_versions_of(loan_id)) + 1
        value_date = as_of or new_schedule.start_date

        outstanding = to_minor(position.outstanding_principal)
        new_principal = to_minor(new_schedule.principal)
        booked_penalty = to_minor(
            sum((max(i.outstanding(Component.PENALTY), ZERO) for i in position.installments), ZERO)
        )
        carried_penalty = to_minor(carried.penalty) if carried is not None else 0
        entry = EntryBuilder(EntryKind.RESCHEDULE, value_date, loan_id=loan_id, schedule_version=version, memo=reason)
        cap_interest, cap_fee = fen_of(capitalized_interest), fen_of(capitalized_fee)
        if min(cap_interest, cap_fee) < 0:
            raise InvalidInput("`capitalized`: amounts must be 0 or more", field="capitalized")
        if not cap_interest and not cap_fee:
            cap_interest = max(new_principal - outstanding, 0)
        forgiven = outstanding + cap_interest + cap_fee - new_principal
        if forgiven < 0:
            raise InvalidInput(
                f"`schedule`: new principal {new_schedule.principal} is more than the outstanding "
                f"{from_minor(outstanding)} plus what is capitalised; expected at most "
                f"{from_minor(outstanding + cap_interest + cap_fee)}",
                field="schedule",
            )
        entry.debit(LedgerAccount.WAIVERS, forgiven).credit(LedgerAccount.LOANS_RECEIVABLE, forgiven)
        entry.debit(LedgerAccount.LOANS_RECEIVABLE, cap_interest + cap_fee)
        entry.credit(LedgerAccount.INTEREST_INCOME, cap_interest).credit(LedgerAccount.FEE_INCOME, cap_fee)
        waived_penalty = max(booked_penalty - carried_penalty, 0)
        reclassified = booked_penalty - waived_penalty
        entry.debit(LedgerAccount.WAIVERS, waived_penalty).credit(LedgerAccount.PENALTY_RECEIVABLE, waived_penalty)
        entry.debit(LedgerAccount.PENALTY_INCOME, reclassified).credit(LedgerAccount.PENALTY_RECEIVABLE, reclassified)
        entries = [] if entry.is_empty else [entry.build()]
        entries += _capitalization_entries(loan_id, version, new_schedule)

        ledger.update_schedule_version(loan_id, old, archived_at=now)
        _insert_version(
            uow,
            loan_id,
            version,
            new_schedule,
            reason=reason,
            actor=actor,
            parent=old,
            key=idempotency_key,
            annual_rate=annual_rate,
            fee_rate=fee_rate,
        )
        first_due = new_schedule.installments[0].due_date
        if carried is not None and carried.total > 0:
            ledger.insert_carried_arrears(
                loan_id,
                version,
                due_date=carried.due_date,
                interest_fen=to_minor(carried.interest),
                fee_fen=to_minor(carried.fee + carried.penalty),
            )
            first_due = min(first_due, carried.due_date)
        post_entries(uow.connection, entries, actor=actor, posted_at=now)
        ledger.update_loans(
            [
                {
                    "id": loan_id,
                    "schedule_version": version,
                    "outstanding_principal_fen": to_minor(new_schedule.total_principal),
                    "oldest_unpaid_due_date": first_due,
                    "dpd": 0,
                    "bucket": Bucket.CURRENT.value,
                    "overdue_principal_fen": 0,
                    "overdue_amount_fen": 0,
                    "penalty_accrued_until": max(value_date, record.penalty_accrued_until or value_date),
                    "updated_at": now,
                }
            ]
        )
        ledger.append_audit(
            [
                _audit(
                    uow,
                    actor,
                    "schedule.applied",
                    "loan",
                    loan_id,
                    {
                        "version": version,
                        "previous_version": old,
                        "reason": reason,
                        "principal": str(new_schedule.principal),
                        "outstanding_before": str(from_minor(outstanding)),
                        "term": len(new_schedule.installments),
                        "carried": None if carried is None else str(carried.total),
                        "penalty_waived": str(from_minor(waived_penalty)),
                        "idempotency_key": idempotency_key,
                    },
                )
            ]
        )
        uow.commit()
    return ScheduleChange(loan_id, version, old)


def reverse_reschedule(
    loan_id: str, version: int, *, actor: str, uow: UnitOfWork, reason: str = "reversed"
) -> ScheduleChange:
    """Undo a re-schedule: version ``version`` (the live one) is reversed and its parent is live again.

    Allowed only while nothing (payment or credit) has been allocated under ``version``; its journal
    entries are mirrored on their own value dates, so balances as of any date read as if it had
    never gone live, while the journal keeps both.
    """
    with uow:
        ledger = uow.ledger
        now = uow.now()
        record = ledger.require_loan(loan_id, lock=True)
        sv = ledger.schedule_version(loan_id, version)
        if sv is None:
            raise NotFound(f"`version`: loan {loan_id} has no schedule version {version}", field="version")
        if sv.reversed_at is not None:
            raise Conflict(f"`version`: version {version} of loan {loan_id} is already reversed", field="version")
        if record.schedule_version != version:
            raise Conflict(
                f"`version`: {version} is not loan {loan_id}'s live version ({record.schedule_version}); "
                "only the live version can be reversed",
                field="version",
            )
        if sv.parent_version is None:
            raise Conflict(
                f"`version`: version {version} is the loan's original schedule; nothing to reverse to", field="version"
            )
        if record.status != LoanStatus.OPEN.value:
            raise Conflict(
                f"`loan`: {loan_id} is {record.status}; its schedule can no longer be reversed", field="loan"
            )
        used = ledger.live_allocation_count(loan_id, version)
        if used:
            raise Conflict(
                f"`version`: {used} allocations (payments or credit) were made under version {version} of loan "
                f"{loan_id}; a re-schedule can only be reversed before any payment is allocated under it",
                field="version",
            )
        # Every entry posted under the version and not yet reversed is mirrored on its own value date.
        je = journal_entries
        reversed_already = select(je.c.reverses_entry_id).where(je.c.reverses_entry_id.is_not(None))
        ids = [
            int(r[0])
            for r in uow.connection.execute(
                select(je.c.id).where(
                    and_(
                        je.c.loan_id == loan_id,
                        je.c.schedule_version == version,
                        je.c.kind != EntryKind.REVERSAL.value,
                        not_(je.c.id.in_(reversed_already)),
                    )
                )
            )
        ]
        originals = load_entries(uow.connection, ids)
        mirrors = [
            reversal_of(
                entry_id, entry, value_date=entry.value_date, memo=f"reverses schedule version {version}: {reason}"
            )
            for entry_id, entry in sorted(originals.items())
        ]
        post_entries(uow.connection, mirrors, actor=actor, posted_at=now)

        parent = sv.parent_version
        ledger.update_schedule_version(loan_id, version, reversed_at=now)
        ledger.update_schedule_version(loan_id, parent, archived_at=None)
        restored = ledger.positions([_with_version(record, parent)])[loan_id]
        new_rows = ledger.installments_of([(loan_id, version)])[(loan_id, version)]
        charged_under_version = sum(r.penalty_accrued_fen for r in new_rows)
        unpaid = [i.due_date for i in restored.installments if i.outstanding_scheduled > 0]
        ledger.update_loans(
            [
                {
                    "id": loan_id,
                    "schedule_version": parent,
                    "outstanding_principal_fen": to_minor(restored.outstanding_principal),
                    "oldest_unpaid_due_date": min(unpaid) if unpaid else None,
                    "penalty_charged_fen": max(record.penalty_charged_fen - charged_under_version, 0),
                    "updated_at": now,
                }
            ]
        )
        ledger.append_audit(
            [
                _audit(
                    uow,
                    actor,
                    "schedule.reversed",
                    "loan",
                    loan_id,
                    {"version": version, "live_again": parent, "reason": reason, "entries_reversed": len(mirrors)},
                )
            ]
        )
        uow.commit()
    return ScheduleChange(loan_id, parent, version)


def _with_version(record: LoanRecord, version: int) -> LoanRecord:
    return record._replace(schedule_version=version)


# --- quotes --------------------------------------------------------------------------------------------------------


def _open_position(uow: UnitOfWork, loan_id: str) -> LoanPosition:
    record = uow.ledger.require_loan(loan_id)
    if record.status != LoanStatus.OPEN.value:
        raise Conflict(f"`loan`: {loan_id} is {record.status}; only an open loan can be quoted", field="loan")
    return uow.ledger.positions([record])[loan_id]


def quote_settlement(
    loan_id: str, *, as_of: date, uow: UnitOfWork, discount: Decimal = ZERO, waive_penalties: bool = False
) -> Quote:
    """Early settlement (提前结清) of ``loan_id`` on ``as_of``, priced from the ledger's position (nothing written)."""
    with uow:
        position = _open_position(uow, loan_id)
    return early_settlement(position, as_of=as_of, discount=discount, waive_penalties=waive_penalties)


def quote_extension(loan_id: str, *, as_of: date, extra_periods: int, uow: UnitOfWork) -> Quote:
    """Extension (展期) of ``loan_id`` by ``extra_periods`` from ``as_of`` (nothing written)."""
    with uow:
        position = _open_position(uow, loan_id)
    return extension(position, as_of=as_of, extra_periods=extra_periods)


def quote_restructure(
    loan_id: str,
    *,
    as_of: date,
    term: int,
    uow: UnitOfWork,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
    waive_penalties: bool = False,
    haircut: Decimal = ZERO,
    grace_periods: int = 0,
    method: Method | None = None,
    capitalize_overdue: bool = False,
) -> Quote:
    """Restructuring (债务重组) of ``loan_id`` from ``as_of`` (nothing written)."""
    with uow:
        position = _open_position(uow, loan_id)
    return restructure(
        position,
        as_of=as_of,
        term=term,
        annual_rate=annual_rate,
        fee_rate=fee_rate,
        waive_penalties=waive_penalties,
        haircut=haircut,
        grace_periods=grace_periods,
        method=method,
        capitalize_overdue=capitalize_overdue,
    )
