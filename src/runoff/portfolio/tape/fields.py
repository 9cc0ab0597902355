"""The loan tape's fields (借据字段), statuses and the error a tape that cannot be imported raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import polars as pl

from runoff.errors import InvalidInput
from runoff.portfolio.schemas import LOANS

ROW = "row"
"""The 1-based data-row number column every converted frame carries."""


class TapeInvalid(InvalidInput):
    """A tape or its mapping cannot be imported at all (missing required column, bad mapping file, unreadable)."""

    code = "tape.invalid"


class FieldKind(StrEnum):
    """How a tape field is read from its source column."""

    ID = "id"  # the lender's reference (借据号, 客户号) as text; the importer assigns the book's Int64 id
    TEXT = "text"
    DATE = "date"
    AMOUNT = "amount"  # money, stored as integer fen (分)
    INTEGER = "integer"
    RATE = "rate"  # a fraction: 0.18 is 18 %
    METHOD = "method"  # schedule method (还款方式), via the one alias seam
    STATUS = "status"


class TapeStatus(StrEnum):
    """A loan's status as a tape states it (贷款状态)."""

    CURRENT = "current"  # 正常
    OVERDUE = "overdue"  # 逾期
    PAID_OFF = "paid-off"  # 结清
    EARLY_SETTLED = "early-settled"  # 提前结清
    CHARGED_OFF = "charged-off"  # 核销

    @property
    def book_status(self) -> str:
        """The ``loans.status`` value (``schemas.LOAN_STATUSES``): current and overdue loans are both active."""
        return "active" if self in (TapeStatus.CURRENT, TapeStatus.OVERDUE) else self.value


STATUS_ALIASES: dict[str, TapeStatus] = {
    "current": TapeStatus.CURRENT,
    "normal": TapeStatus.CURRENT,
    "正常": TapeStatus.CURRENT,
    "overdue": TapeStatus.OVERDUE,
    "delinquent": TapeStatus.OVERDUE,
    "逾期": TapeStatus.OVERDUE,
    "paid-off": TapeStatus.PAID_OFF,
    "paid_off": TapeStatus.PAID_OFF,
    "closed": TapeStatus.PAID_OFF,
    "settled": TapeStatus.PAID_OFF,
    "结清": TapeStatus.PAID_OFF,
    "已结清": TapeStatus.PAID_OFF,
    "early-settled": TapeStatus.EARLY_SETTLED,
    "early_settled": TapeStatus.EARLY_SETTLED,
    "提前结清": TapeStatus.EARLY_SETTLED,
    "charged-off": TapeStatus.CHARGED_OFF,
    "charged_off": TapeStatus.CHARGED_OFF,
    "written-off": TapeStatus.CHARGED_OFF,
    "核销": TapeStatus.CHARGED_OFF,
    "已核销": TapeStatus.CHARGED_OFF,
}


def parse_status(value: Any) -> TapeStatus:
    """The one seam mapping status aliases (正常, 逾期, 结清, 核销, ...) to :class:`TapeStatus`."""
    if isinstance(value, TapeStatus):
        return value
    key = str(value).strip().lower()
    if key in STATUS_ALIASES:
        return STATUS_ALIASES[key]
    allowed = ", ".join(s.value for s in TapeStatus)
    raise ValueError(f"{value!r} is not a loan status; expected one of {allowed} (or 正常, 逾期, 结清, 核销)")


@dataclass(frozen=True, slots=True)
class TapeField:
    """A field of runoff's loan tape: its name, how it is read, whether every row needs it."""

    name: str
    kind: FieldKind
    label_zh: str
    required: bool = False


TAPE_FIELDS: tuple[TapeField, ...] = (
    TapeField("loan_id", FieldKind.ID, "借据号", required=True),
    TapeField("customer_id", FieldKind.ID, "客户号", required=True),
    TapeField("account_id", FieldKind.ID, "额度账户号"),
    TapeField("product_id", FieldKind.TEXT, "产品编号"),
    TapeField("method", FieldKind.METHOD, "还款方式", required=True),
    TapeField("term_months", FieldKind.INTEGER, "期数", required=True),
    TapeField("annual_rate", FieldKind.RATE, "年利率"),
    TapeField("fee_rate", FieldKind.RATE, "月费率"),
    TapeField("principal_fen", FieldKind.AMOUNT, "本金", required=True),
    TapeField("originated_on", FieldKind.DATE, "放款日期", required=True),
    TapeField("first_due_on", FieldKind.DATE, "首期还款日"),
    TapeField("maturity_on", FieldKind.DATE, "到期日"),
    TapeField("status", FieldKind.STATUS, "贷款状态"),
    TapeField("closed_on", FieldKind.DATE, "结清日期"),
    TapeField("principal_balance_fen", FieldKind.AMOUNT, "剩余本金"),
    TapeField("dpd", FieldKind.INTEGER, "逾期天数"),
    TapeField("oldest_unpaid_due_on", FieldKind.DATE, "最早未还款日"),
    TapeField("as_of", FieldKind.DATE, "数据日期"),
)
"""runoff's loan-tape fields in order. Names follow the book's tables (``runoff.portfolio.schemas``):
the ``loans`` columns, then the position on the tape's date (balance, DPD, oldest unpaid due date).
Amounts end in ``_fen`` (integer fen) whatever unit the source writes them in."""

FIELDS_BY_NAME: dict[str, TapeField] = {f.name: f for f in TAPE_FIELDS}

ID_DTYPE: pl.DataType = LOANS.column("loan_id").dtype
"""The book's key type (``loans.loan_id``): Int64, which the analytics rely on (e.g. ``numpy.bincount``)."""

REF_DTYPE: pl.DataType = pl.String()
"""A lender's reference (借据号 ``DK20240131000123``, 客户号 ``C-88812``) is text. A reference that is a
whole number (up to 18 digits, leading zeros dropped: ``00123`` is ``123``) is the book's id itself;
any other gets a surrogate id from the workspace's id map (``runoff.app.tape_import``)."""

MAX_REF_LENGTH = 64
"""Longest reference read: longer cells are not an id but a misplaced column (a name, an address)."""

REF_FIELDS: dict[str, str] = {"loan": "loan_id", "customer": "customer_id", "account": "account_id"}
"""Each kind of reference and the tape field that carries it."""

DTYPES: dict[FieldKind, pl.DataType] = {
    FieldKind.ID: REF_DTYPE,
    FieldKind.TEXT: pl.String(),
    FieldKind.DATE: pl.Date(),
    FieldKind.AMOUNT: pl.Int64(),
    FieldKind.INTEGER: pl.Int64(),
    FieldKind.RATE: pl.Float64(),
    FieldKind.METHOD: pl.String(),
    FieldKind.STATUS: pl.String(),
}


def row_date(as_of: date | None) -> pl.Expr:
    """The date a row describes: its own ``as_of`` (数据日期) when the tape has one, else the tape's."""
    own = pl.col("as_of")
    return own if as_of is None else own.fill_null(pl.lit(as_of, dtype=pl.Date))
