"""Reading and writing the ledger's rows for the use cases, in sets: a chunk of loans is one query, not one each.

Rows come back as small frozen records in integer fen; :meth:`LedgerRepository.positions` turns
them into servicing's :class:`~runoff.servicing.position.LoanPosition` (Decimal), with every
payment's value date, so allocation, penalties and quotes run on exactly what the ledger holds.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple, Self

from sqlalchemy import Connection, RowMapping, String, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from runoff.errors import InvalidInput, NotFound
from runoff.money import to_minor
from runoff.servicing.position import DatedPayment, InstallmentPosition, LoanPosition
from runoff.servicing.product import Component, Product
from runoff.servicing.schedule import Schedule
from runoff.store.ledger.models import (
    AllocationSource,
    allocations,
    audit_log,
    installments,
    loans,
    payments,
    products,
    schedule_versions,
)
from runoff.store.ledger.rowsets import insert_rows, update_rows

PPB = Decimal(1_000_000_000)
_ZERO_MONEY = Decimal("0.00")
_COMPONENTS = {c.value: c for c in Component}


class ProductCache:
    """Validated products by (id, version); a version never changes once stored, so caching is safe."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], Product] = {}

    def get(self, key: tuple[str, int]) -> Product | None:
        return self._by_key.get(key)

    def put(self, key: tuple[str, int], product: Product) -> None:
        self._by_key[key] = product


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    named: tuple[str, ...] | None = getattr(
        cls, "_fields", None
    )  # records are NamedTuples: cheap to build by the 100,000
    return named if named is not None else tuple(f.name for f in fields(cls))


def _record(cls: Any, row: RowMapping) -> Any:
    return cls(*[row[name] for name in _field_names(cls)])


def _columns(table: Any, cls: type) -> list[Any]:
    """``table``'s columns in the order of ``cls``'s fields, so a result row builds the record positionally."""
    return [table.c[name] for name in _field_names(cls)]


def money_of(amount_fen: int) -> Decimal:
    """Integer fen as a Decimal amount with two decimals (the fast path of ``money.from_minor``)."""
    if amount_fen == 0:  # most paid and waived columns: skip building a Decimal
        return _ZERO_MONEY
    return Decimal(amount_fen).scaleb(-2)


def fen_of(amount: Decimal) -> int:
    """A cent-exact Decimal amount as integer fen (the fast path of ``money.to_minor``); refuses sub-cent amounts."""
    scaled = amount.scaleb(2)
    fen = int(scaled)
    if fen != scaled:
        return to_minor(amount)  # raises with the standard message
    return fen


class LoanRecord(NamedTuple):
    """A row of ``loans``."""

    id: str
    customer_id: str | None
    account_id: str | None
    product_id: str
    product_version: int
    principal_fen: int
    start_date: date
    term: int
    schedule_version: int
    status: str
    closed_on: date | None
    close_reason: str | None
    credit_balance_fen: int
    outstanding_principal_fen: int
    opening_principal_paid_fen: int
    oldest_unpaid_due_date: date | None
    dpd: int
    bucket: str
    overdue_principal_fen: int
    overdue_amount_fen: int
    penalty_charged_fen: int
    penalty_cap_fen: int | None
    last_closed_on: date | None
    penalty_accrued_until: date | None
    last_value_date: date | None
    repost_from: date | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        rec: Self = _record(cls, row)
        return rec


class InstallmentRecord(NamedTuple):
    """A row of ``installments`` (one installment of one schedule version)."""

    loan_id: str
    schedule_version: int
    number: int
    due_date: date
    accrual_start: date | None
    principal_due_fen: int
    interest_due_fen: int
    fee_due_fen: int
    principal_paid_fen: int
    interest_paid_fen: int
    fee_paid_fen: int
    principal_waived_fen: int
    interest_waived_fen: int
    fee_waived_fen: int
    penalty_accrued_fen: int
    penalty_paid_fen: int
    penalty_waived_fen: int
    settled_on: date | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        rec: Self = _record(cls, row)
        return rec

    def position(self, dated: Sequence[DatedPayment] = ()) -> InstallmentPosition:
        """Servicing's view: amounts waived are taken off what is due."""
        z = _ZERO_MONEY  # inline fen → Decimal: this runs for every installment of every loan posted to
        return InstallmentPosition(
            number=self.number,
            due_date=self.due_date,
            principal_due=Decimal(self.principal_due_fen - self.principal_waived_fen).scaleb(-2),
            interest_due=Decimal(self.interest_due_fen - self.interest_waived_fen).scaleb(-2),
            fee_due=Decimal(self.fee_due_fen - self.fee_waived_fen).scaleb(-2) if self.fee_due_fen else z,
            principal_paid=Decimal(self.principal_paid_fen).scaleb(-2) if self.principal_paid_fen else z,
            interest_paid=Decimal(self.interest_paid_fen).scaleb(-2) if self.interest_paid_fen else z,
            fee_paid=Decimal(self.fee_paid_fen).scaleb(-2) if self.fee_paid_fen else z,
            penalty_accrued=Decimal(self.penalty_accrued_fen).scaleb(-2) if self.penalty_accrued_fen else z,
            penalty_paid=Decimal(self.penalty_paid_fen).scaleb(-2) if self.penalty_paid_fen else z,
            penalty_waived=Decimal(self.penalty_waived_fen).scaleb(-2) if self.penalty_waived_fen else z,
            accrual_start=self.accrual_start,
            dated_payments=tuple(dated),
        )


class ScheduleVersionRecord(NamedTuple):
    """A row of ``schedule_versions``."""

    loan_id: str
    version: int
    reason: str
    created_at: datetime
    created_by: str
    archived_at: datetime | None
    reversed_at: datetime | None
    idempotency_key: str | None
    parent_version: int | None
    principal_fen: int
    start_date: date
    term: int
    method: str
    annual_rate: str | None
    fee_rate: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        rec: Self = _record(cls, row)
        return rec


class PaymentRecord(NamedTuple):
    """A row of ``payments``."""

    id: int
    loan_id: str
    amount_fen: int
    value_date: date
    received_at: datetime
    idempotency_key: str
    status: str
    actor: str
    schedule_version: int
    credited_fen: int
    prepaid_principal_fen: int
    waived_fen: int
    penalty_charged_fen: int
    kind: str  # payment or recovery (PaymentKind)

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        rec: Self = _record(cls, row)
        return rec


class AllocationRecord(NamedTuple):
    """A row of ``allocations``."""

    payment_id: int | None
    loan_id: str
    schedule_version: int
    value_date: date
    installment_number: int | None
    component: str
    amount_fen: int
    source: str

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        rec: Self = _record(cls, row)
        return rec


def product_digest(product: Product) -> str:
    """sha256 of the product's canonical JSON: the same terms always get the same version."""
    body = json.dumps(product.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def rate_ppb(rate: Decimal, *, field: str) -> int:
    """A rate as an exact integer in parts per billion (the daily close accrues in integers)."""
    scaled = rate * PPB
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"`{field}`: {rate} has more than 9 decimals; the ledger stores rates to 1e-9", field=field)
    return int(scaled)


def audit_entry(
    at: datetime, actor: str, action: str, object_type: str, object_id: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    """An ``audit_log`` row (审计日志): who did what to which object, when, with the details as JSON."""
    return {
        "at": at,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id[:128],
        "details": dict(details),
    }


def _id_list(column: Any, dialect: str) -> Any:
    """``column IN :ids``; on PostgreSQL ``column = ANY(:ids)``: one array parameter instead of thousands (the
    driver parses and the server plans one statement shape whatever the list's length)."""
    if dialect == "postgresql":
        element = String() if isinstance(column.type, String) else column.type
        return column == any_(bindparam("ids", type_=ARRAY(element)))
    return column.in_(bindparam("ids", expanding=True))


def _keyed_by(query: Any, column: Any, dialect: str) -> Any:
    """``query`` restricted to rows whose ``column`` is in ``:ids``. On PostgreSQL a join on ``unnest(:ids)``:
    ``column = ANY(:ids)`` on a table whose statistics lag (a growing payments table) is planned as a scan that
    compares every row with every id, while the join is planned as a hash or index lookup."""
    if dialect != "postgresql":
        return query.where(column.in_(bindparam("ids", expanding=True)))
    element = String() if isinstance(column.type, String) else column.type
    keys = func.unnest(bindparam("ids", type_=ARRAY(element))).table_valued("key").render_derived()
    return query.join(keys, column == keys.c.key)


_DRIVER_SQL: dict[int, str] = {}


def _driver_sql(query: Any, dialect: Any) -> str:
    """``query`` compiled for the driver once (the hot-path queries are built once, by ``@cache``)."""
    key = id(query)
    sql = _DRIVER_SQL.get(key)
    if sql is None:
        compiled = query.compile(dialect=dialect)
        if list(compiled.params) != ["ids"]:  # pragma: no cover - a programming error, not a user's
            raise TypeError(f"hot-path queries take one :ids parameter, not {list(compiled.params)}")
        sql = _DRIVER_SQL[key] = str(compiled)
    return sql


def _chunks(items: Sequence[Any], size: int = 5000) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class LedgerRepository:
    """Set-based reads and writes on one connection (inside a unit of work's transaction)."""

    def __init__(self, conn: Connection, *, products: ProductCache | None = None) -> None:
        self.conn = conn
        self._products = products if products is not None else ProductCache()

    @property
    def _dialect(self) -> str:
        return self.conn.dialect.name

    def _id_rows(self, query: Any, ids: list[Any]) -> Sequence[Sequence[Any]]:
        """Rows of a hot-path ``query`` taking one ``:ids`` parameter, as plain tuples.

        On PostgreSQL the statement, compiled once, runs on the driver's cursor in this transaction:
        psycopg already returns Python values for these columns, and skipping SQLAlchemy's result rows
        halves the cost of reading the thousands of installment rows a payment batch needs.
        """
        if self._dialect != "postgresql":
            return self.conn.execute(query, {"ids": ids}).all()
        raw: Any = self.conn.connection.dbapi_connection
        with raw.cursor() as cur:
            cur.execute(_driver_sql(query, self.conn.dialect), {"ids": ids})
            rows: list[tuple[Any, ...]] = cur.fetchall()
        return rows

    # --- products ------------------------------------------------------------------------------------------------

    def register_product(self, product: Product, *, now: datetime) -> int:
        """The stored version of ``product``: an existing one with the same terms, else a new version."""
        digest = product_digest(product)
        found = self.conn.execute(
            select(products.c.version).where(products.c.id == product.id, products.c.digest == digest)
        ).scalar_one_or_none()
        if found is not None:
            self._products.put((product.id, int(found)), product)
            return int(found)
        latest = self.conn.execute(
            select(func.coalesce(func.max(products.c.version), 0)).where(products.c.id == product.id)
        ).scalar_one()
        version = int(latest) + 1
        penalty = product.penalty
        self.conn.execute(
            insert(products).values(
                id=product.id,
                version=version,
                digest=digest,
                body=product.model_dump(mode="json"),
                method=product.method.value,
                penalty_base=penalty.base.value,
                penalty_daily_rate_ppb=rate_ppb(penalty.daily_rate, field="penalty.daily_rate"),
                penalty_grace_days=penalty.grace_days,
                penalty_cap_ppb=(
                    None
                    if penalty.cap_rate_of_principal is None
                    else rate_ppb(penalty.cap_rate_of_principal, field="penalty.cap_rate_of_principal")
                ),
                residual_tolerance_fen=to_minor(product.residual_tolerance),
                rounding_mode=product.rounding.mode.value,
                created_at=now,
            )
        )
        self._products.put((product.id, version), product)
        return version

    def product(self, product_id: str, version: int) -> Product:
        cached = self._products.get((product_id, version))
        if cached is not None:
            return cached
        body = self.conn.execute(
            select(products.c.body).where(products.c.id == product_id, products.c.version == version)
        ).scalar_one_or_none()
        if body is None:
            raise NotFound(f"product {product_id!r} version {version} is not in the ledger", field="product")
        product = Product.model_validate(body)
        self._products.put((product_id, version), product)
        return product

    # --- loans ---------------------------------------------------------------------------------------------------

    def loan(self, loan_id: str, *, lock: bool = False) -> LoanRecord | None:
        return self.loans([loan_id], lock=lock).get(loan_id)

    def loans(self, loan_ids: Iterable[str], *, lock: bool = False) -> dict[str, LoanRecord]:
        """Loans by id; ``lock`` takes their row locks (PostgreSQL ``FOR UPDATE``, in id order against deadlocks)."""
        out: dict[str, LoanRecord] = {}
        query = _q_loans(self._dialect, lock)
        for chunk in _chunks(sorted(set(loan_ids))):
            for row in self.conn.execute(query, {"ids": list(chunk)}).all():
                out[row[0]] = LoanRecord._make(row)
        return out

    def loans_with_live_versions(
        self, loan_ids: Iterable[str], *, lock: bool = False
    ) -> tuple[dict[str, LoanRecord], dict[str, ScheduleVersionRecord]]:
        """Loans and their live schedule versions in one query (``lock``: FOR UPDATE of the loan rows)."""
        records: dict[str, LoanRecord] = {}
        versions: dict[str, ScheduleVersionRecord] = {}
        n = len(_field_names(LoanRecord))
        query = _q_loans_with_versions(self._dialect, lock)
        for chunk in _chunks(sorted(set(loan_ids))):
            for row in self._id_rows(query, list(chunk)):
                records[row[0]] = LoanRecord._make(row[:n])
                if row[n] is not None:
                    versions[row[0]] = ScheduleVersionRecord._make(row[n:])
        return records, versions

    def require_loan(self, loan_id: str, *, lock: bool = False) -> LoanRecord:
        found = self.loan(loan_id, lock=lock)
        if found is None:
            raise NotFound(f"`loan`: no loan {loan_id!r} in the ledger", field="loan")
        return found

    def insert_loan(self, values: Mapping[str, Any]) -> None:
        self.conn.execute(insert(loans).values(**values))

    def update_loans(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Update loans by id; every row must carry the same columns (``id`` plus the ones to set)."""
        update_rows(self.conn, loans, ("id",), rows)

    # --- schedule versions and installments ----------------------------------------------------------------------

    def schedule_version(self, loan_id: str, version: int) -> ScheduleVersionRecord | None:
        row = (
            self.conn.execute(
                select(schedule_versions).where(
                    schedule_versions.c.loan_id == loan_id, schedule_versions.c.version == version
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else ScheduleVersionRecord.from_row(row)

    def schedule_versions_of(self, loan_id: str) -> list[ScheduleVersionRecord]:
        rows = self.conn.execute(
            select(schedule_versions)
            .where(schedule_versions.c.loan_id == loan_id)
            .order_by(schedule_versions.c.version)
        ).mappings()
        return [ScheduleVersionRecord.from_row(r) for r in rows]

    def schedule_version_by_key(self, key: str) -> ScheduleVersionRecord | None:
        row = (
            self.conn.execute(select(schedule_versions).where(schedule_versions.c.idempotency_key == key))
            .mappings()
            .first()
        )
        return None if row is None else ScheduleVersionRecord.from_row(row)

    def live_versions(self, loan_ids: Iterable[str]) -> dict[str, ScheduleVersionRecord]:
        """The live schedule version of each loan."""
        out: dict[str, ScheduleVersionRecord] = {}
        query = _q_live_versions(self._dialect)
        for chunk in _chunks(sorted(set(loan_ids))):
            for row in self.conn.execute(query, {"ids": list(chunk)}).all():
                out[row[0]] = ScheduleVersionRecord._make(row)
        return out

    def insert_schedule_version(self, values: Mapping[str, Any]) -> None:
        self.conn.execute(insert(schedule_versions).values(**values))

    def update_schedule_version(self, loan_id: str, version: int, **values: Any) -> None:
        self.conn.execute(
            update(schedule_versions)
            .where(schedule_versions.c.loan_id == loan_id, schedule_versions.c.version == version)
            .values(**values)
        )

    def insert_installments(self, loan_id: str, version: int, schedule: Schedule) -> None:
        """The installments of ``schedule`` as ``loan_id``'s version ``version``, nothing paid."""
        self.conn.execute(
            insert(installments),
            [
                {
                    "loan_id": loan_id,
                    "schedule_version": version,
                    "number": i.number,
                    "due_date": i.due_date,
                    "accrual_start": i.accrual_start,
                    "principal_due_fen": to_minor(i.principal),
                    "interest_due_fen": to_minor(i.interest),
                    "fee_due_fen": to_minor(i.fee),
                }
                for i in schedule.installments
            ],
        )

    def insert_carried_arrears(
        self, loan_id: str, version: int, *, due_date: date, interest_fen: int, fee_fen: int
    ) -> None:
        """Installment 0 of a new version: arrears of the old schedule that stay due on ``due_date``."""
        self.conn.execute(
            insert(installments).values(
                loan_id=loan_id,
                schedule_version=version,
                number=0,
                due_date=due_date,
                interest_due_fen=interest_fen,
                fee_due_fen=fee_fen,
            )
        )

    def installments_of(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], list[InstallmentRecord]]:
        """Installments of each (loan, version), in number order."""
        wanted = set(keys)
        out: dict[tuple[str, int], list[InstallmentRecord]] = {k: [] for k in wanted}
        # loan_id IN (...) uses the primary key; a (loan_id, version) tuple IN plans badly on PostgreSQL.
        query = _q_installments(self._dialect)
        make = InstallmentRecord._make
        for chunk in _chunks(sorted({k[0] for k in wanted}), 2000):
            for row in self._id_rows(query, list(chunk)):
                key = (row[0], row[1])
                if key in wanted:
                    out[key].append(make(row))
        return out

    def update_installments(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Update installments by (loan_id, schedule_version, number); every row carries the same columns."""
        update_rows(self.conn, installments, ("loan_id", "schedule_version", "number"), rows)

    # --- positions -----------------------------------------------------------------------------------------------

    def dated_payments(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int, int], list[DatedPayment]]:
        """Money applied to each installment with its value date: (loan, version, number) → payments."""
        wanted = set(keys)
        out: dict[tuple[str, int, int], list[DatedPayment]] = defaultdict(list)
        query = _q_dated(self._dialect)
        for chunk in _chunks(sorted({k[0] for k in wanted}), 2000):
            rows = self.conn.execute(query, {"ids": list(chunk)}).all()
            for loan_id, version, number, value_date, component, amount_fen in rows:
                if (loan_id, version) in wanted:
                    out[(loan_id, version, number)].append(
                        DatedPayment(value_date, _COMPONENTS[component], money_of(amount_fen))
                    )
        return out

    def positions(self, records: Iterable[LoanRecord]) -> dict[str, LoanPosition]:
        """Servicing positions of ``records`` on their live schedule versions, in three queries."""
        return self.positions_and_rows(records)[0]

    def positions_and_rows(
        self, records: Iterable[LoanRecord], *, versions: Mapping[str, ScheduleVersionRecord] | None = None
    ) -> tuple[dict[str, LoanPosition], dict[tuple[str, int], list[InstallmentRecord]]]:
        """Positions plus the installment rows they were built from (for writing back what changed).

        ``versions``: the live schedule versions when already read (``loans_with_live_versions``).
        """
        recs = list(records)
        if not recs:
            return {}, {}
        keys = [(r.id, r.schedule_version) for r in recs]
        if versions is None:
            versions = self.live_versions([r.id for r in recs])
        rows = self.installments_of(keys)
        dated = self.dated_payments(keys)
        out: dict[str, LoanPosition] = {}
        for r in recs:
            version = versions.get(r.id)
            if version is None:
                raise NotFound(f"loan {r.id!r} has no schedule version {r.schedule_version}", field="loan")
            product = self.product(r.product_id, r.product_version)
            out[r.id] = build_position(r, version, rows[(r.id, r.schedule_version)], dated, product)
        return out, rows

    def position(self, loan_id: str) -> LoanPosition:
        return self.positions([self.require_loan(loan_id)])[loan_id]

    # --- payments and allocations --------------------------------------------------------------------------------

    def payments_by_keys(self, keys: Iterable[str]) -> dict[str, PaymentRecord]:
        out: dict[str, PaymentRecord] = {}
        query = _q_payments_by_keys(self._dialect)
        for chunk in _chunks(sorted(set(keys))):
            for row in self.conn.execute(query, {"ids": list(chunk)}).all():
                record = PaymentRecord._make(row)
                out[record.idempotency_key] = record
        return out

    def allocations_of_payments(self, payment_ids: Iterable[int]) -> dict[int, list[AllocationRecord]]:
        out: dict[int, list[AllocationRecord]] = defaultdict(list)
        query = _q_allocations_of_payments(self._dialect)
        for chunk in _chunks(sorted(set(payment_ids))):
            for row in self.conn.execute(query, {"ids": list(chunk)}).all():
                record = AllocationRecord._make(row)
                if record.payment_id is not None:
                    out[record.payment_id].append(record)
        return out

    def insert_payments(self, rows: Sequence[Mapping[str, Any]]) -> None:
        insert_rows(self.conn, payments, rows)

    def insert_allocations(self, rows: Sequence[Mapping[str, Any]]) -> None:
        insert_rows(self.conn, allocations, rows)

    def live_allocation_count(self, loan_id: str, version: int) -> int:
        """Allocations (payments or credit) not reversed under ``loan_id``'s schedule ``version``."""
        return int(
            self.conn.execute(
                select(func.count())
                .select_from(allocations)
                .where(
                    allocations.c.loan_id == loan_id,
                    allocations.c.schedule_version == version,
                    allocations.c.reversed.is_(False),
                )
            ).scalar_one()
        )

    # --- audit ---------------------------------------------------------------------------------------------------

    def append_audit(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append to the audit log (never updated or deleted: the database refuses)."""
        insert_rows(self.conn, audit_log, rows)


# Statements are built once per dialect: building a SQLAlchemy expression costs more than running it.


@cache
def _q_loans(dialect: str, lock: bool) -> Any:
    query = select(*_columns(loans, LoanRecord)).where(_id_list(loans.c.id, dialect)).order_by(loans.c.id)
    return query.with_for_update() if lock else query


@cache
def _q_loans_with_versions(dialect: str, lock: bool) -> Any:
    live = (schedule_versions.c.loan_id == loans.c.id) & (schedule_versions.c.version == loans.c.schedule_version)
    query = (
        select(*_columns(loans, LoanRecord), *_columns(schedule_versions, ScheduleVersionRecord))
        .select_from(loans.outerjoin(schedule_versions, live))
        .where(_id_list(loans.c.id, dialect))
        .order_by(loans.c.id)
    )
    return query.with_for_update(of=loans) if lock else query


@cache
def _q_live_versions(dialect: str) -> Any:
    live = (loans.c.id == schedule_versions.c.loan_id) & (loans.c.schedule_version == schedule_versions.c.version)
    return (
        select(*_columns(schedule_versions, ScheduleVersionRecord))
        .join(loans, live)
        .where(_id_list(loans.c.id, dialect))
    )


@cache
def _q_installments(dialect: str) -> Any:
    i = installments
    return (
        select(*_columns(i, InstallmentRecord))
        .where(_id_list(i.c.loan_id, dialect))
        .order_by(i.c.loan_id, i.c.schedule_version, i.c.number)
    )


@cache
def _q_dated(dialect: str) -> Any:
    a = allocations
    query = select(
        a.c.loan_id, a.c.schedule_version, a.c.installment_number, a.c.value_date, a.c.component, a.c.amount_fen
    ).where(a.c.reversed.is_(False), a.c.installment_number.is_not(None))
    return _keyed_by(query, a.c.loan_id, dialect).order_by(a.c.id)


@cache
def _q_payments_by_keys(dialect: str) -> Any:
    return _keyed_by(select(*_columns(payments, PaymentRecord)), payments.c.idempotency_key, dialect)


@cache
def _q_allocations_of_payments(dialect: str) -> Any:
    a = allocations
    return select(*_columns(a, AllocationRecord)).where(_id_list(a.c.payment_id, dialect)).order_by(a.c.id)


def build_position(
    loan: LoanRecord,
    version: ScheduleVersionRecord,
    rows: Sequence[InstallmentRecord],
    dated: Mapping[tuple[str, int, int], Sequence[DatedPayment]],
    product: Product,
) -> LoanPosition:
    """A servicing position from ledger rows (the live version's installments and their dated payments)."""
    return LoanPosition(
        loan_id=loan.id,
        product=product,
        principal=money_of(version.principal_fen),
        start_date=version.start_date,
        installments=tuple(row.position(dated.get((loan.id, row.schedule_version, row.number), ())) for row in rows),
        schedule_version=loan.schedule_version,
        credit_balance=money_of(loan.credit_balance_fen),
        penalty_charged_total=money_of(loan.penalty_charged_fen),
        annual_rate=Decimal(version.annual_rate) if version.annual_rate is not None else None,
        fee_rate=Decimal(version.fee_rate) if version.fee_rate is not None else None,
    )


__all__ = [
    "AllocationRecord",
    "AllocationSource",
    "InstallmentRecord",
    "LedgerRepository",
    "LoanRecord",
    "PaymentRecord",
    "ProductCache",
    "ScheduleVersionRecord",
    "audit_entry",
    "build_position",
    "product_digest",
    "rate_ppb",
]
