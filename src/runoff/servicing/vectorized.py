"""Vectorized repayment schedules (批量还款计划): many loans at once, in integer fen, to the cent.

The Decimal engine (:mod:`runoff.servicing.schedule`) is the contract; this module reproduces its
amounts (``docs/schedule-conventions.md``) for whole books as NumPy ``int64`` arrays of fen, so
analytics and the run-off simulation can schedule millions of loans in well under a second and still
agree with the ledger to the cent on every loan.

How it stays exact:

* Rates are integers in units of 1e-8 (:data:`RATE_SCALE`; 0.18 is ``18_000_000``), so every amount
  except the level payment of 等额本息 is an exact rational: period interest ``q(B × A / ppy)`` is
  ``B_fen × a / (10^8 × ppy)`` rounded by integer division with an explicit half-up or half-even
  tie rule, never through a float.
* The level payment ``P r / (1 − (1 + r)^−n)`` is computed in float64 (``log1p``/``expm1``, a few
  ulps of relative error). Only a loan whose payment lies within a tolerance of a rounding boundary
  (far wider than the float error, about one loan in a million at usual sizes) is recomputed with
  Python ``Decimal`` by the Decimal engine's own formula, so the rounded payment is the Decimal
  engine's on every loan.

Scope: period-basis interest (``interest_basis: period``) for the four methods, both rounding modes,
``multiple_of`` in whole fen, grace periods of the interest-only kind, a down payment, monthly /
biweekly / weekly due dates with the month-end clamp and an optional business-day rule. Interest
that accrues by day and capitalising grace periods are out of scope and raise
:class:`~runoff.errors.ScheduleInvalid`: schedule such loans with the Decimal engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from runoff.calendar import BusinessCalendar, BusinessDayRule, Frequency
from runoff.errors import ScheduleInvalid
from runoff.money import RoundingMode, to_minor
from runoff.servicing.product import GraceKind, InterestBasis, Method, Product, Rounding, parse_method
from runoff.servicing.schedule import annuity_payment, round_installment

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
DateArray = npt.NDArray[np.datetime64]

RATE_SCALE: Final = 10**8
"""Rates are passed as integers in units of 1e-8: 0.18 a year is 18_000_000, 0.006 a period 600_000."""

MAX_PRINCIPAL_FEN: Final = 90_000_000_000
"""Largest principal (900 million yuan) for which every intermediate product fits in int64.

Bound: a balance never exceeds the principal (no capitalisation here) and an annual rate is at most
1 (``a ≤ 10^8``), so the interest numerator ``B × a + den / 2 ≤ 9·10^10 × 10^8 + 52·10^8 / 2
< 9.0000001·10^18 < 2^63 − 1 ≈ 9.223·10^18``. A flat fee ``P × f`` (``f ≤ 10^7``) and the
multiple-of numerators ``P + n × I`` (``n ≤ 360``, ``I ≤ P × a / den ≤ P``) stay far below that.
"""

MAX_TERM: Final = 360

METHOD_CODES: Final[dict[Method, int]] = {
    Method.EQUAL_INSTALLMENT: 0,
    Method.EQUAL_PRINCIPAL: 1,
    Method.FLAT_FEE: 2,
    Method.INTEREST_ONLY: 3,
}
"""Method of each loan as a small integer code (``method`` arrays of :func:`build_schedules`)."""

_METHODS_BY_CODE: Final = {code: method for method, code in METHOD_CODES.items()}

PAYMENT_BOUNDARY_TOLERANCE: Final = 1e-11
"""Relative distance to a rounding boundary under which a float level payment is recomputed in Decimal.

float64 computes ``P r / (1 − (1 + r)^−n)`` to within ~10 ulps (~2·10^-15 relative); 1e-11 leaves a
factor of several thousand, and flags about 2·10^-11 × payment-in-fen of the loans (2 in a million
for a 1,000-yuan payment).
"""


@dataclass(frozen=True, slots=True)
class ScheduleArrays:
    """Schedules of many loans as ``(loans × periods)`` int64 fen arrays, padded with zeros past each term.

    Row ``i`` is loan ``i``; column ``k`` its installment ``k + 1``. ``installments[i]`` is how many
    installments loan ``i`` has (its term); :attr:`mask` marks the real ones. ``due_date`` is
    ``datetime64[D]`` (``NaT`` in the padding) when start dates were given. The arrays are
    period-major in memory (each is the transpose of a C-ordered ``(periods × loans)`` block) and
    read-only.
    """

    principal_fen: IntArray
    interest_fen: IntArray
    fee_fen: IntArray
    balance_after_fen: IntArray
    capitalized_fen: IntArray
    installments: IntArray
    due_date: DateArray | None = None

    @property
    def n_loans(self) -> int:
        return int(self.principal_fen.shape[0])

    @property
    def n_periods(self) -> int:
        return int(self.principal_fen.shape[1])

    @property
    def mask(self) -> BoolArray:
        """True where the installment exists (column < the loan's term)."""
        return np.arange(self.n_periods)[None, :] < self.installments[:, None]

    @property
    def total_fen(self) -> IntArray:
        """What falls due per installment: principal + interest + fee."""
        total: IntArray = self.principal_fen + self.interest_fen + self.fee_fen
        return total


def rate_units(rate: Any, *, field: str = "annual_rate") -> IntArray:
    """Rates (fractions) as int64 in units of 1e-8 (:data:`RATE_SCALE`).

    ``Decimal``, ``str`` and ``int`` values must be exact multiples of 1e-8 (``"0.123456789"`` is
    refused); floats are read as the nearest 1e-8, which is the decimal they were written as for any
    rate with at most 8 decimals. Accepts a scalar or a sequence / array; returns a 1-D or 0-D array.
    """
    if isinstance(rate, np.ndarray) and rate.dtype.kind == "f":
        if not np.all(np.isfinite(rate)):
            raise ScheduleInvalid(f"`{field}`: rates must be finite numbers", field=field)
        scaled: IntArray = np.rint(rate * RATE_SCALE).astype(np.int64)
        return scaled
    if isinstance(rate, np.ndarray) and rate.dtype.kind in "iu":
        raise ScheduleInvalid(
            f"`{field}`: an integer array is ambiguous; pass rates as fractions (floats or Decimals), "
            "or pass integer 1e-8 units to build_schedules directly",
            field=field,
        )
    values = rate if isinstance(rate, Sequence | np.ndarray) and not isinstance(rate, str) else [rate]
    units = []
    for value in values:
        exact = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
        scaled_value = exact * RATE_SCALE
        if not scaled_value.is_finite() or scaled_value != scaled_value.to_integral_value():
            raise ScheduleInvalid(
                f"`{field}`: {value} has more than 8 decimals; the vectorized path needs rates in 1e-8 units",
                field=field,
            )
        units.append(int(scaled_value))
    out = np.asarray(units, dtype=np.int64)
    if not isinstance(rate, Sequence | np.ndarray) or isinstance(rate, str):
        return out.reshape(())
    return out


def method_codes(methods: Sequence[Method | str]) -> npt.NDArray[np.int8]:
    """Methods (enums or aliases such as "等额本息") as the int8 codes of :data:`METHOD_CODES`."""
    return np.asarray([METHOD_CODES[parse_method(m)] for m in methods], dtype=np.int8)


def build_schedules(
    method: Method | str | npt.ArrayLike,
    *,
    principal_fen: npt.ArrayLike,
    term: npt.ArrayLike,
    annual_rate_units: npt.ArrayLike = 0,
    fee_rate_units: npt.ArrayLike = 0,
    grace_periods: npt.ArrayLike = 0,
    grace_kind: GraceKind = GraceKind.INTEREST_ONLY,
    frequency: Frequency = Frequency.MONTHLY,
    rounding: RoundingMode = RoundingMode.HALF_UP,
    multiple_of_fen: int | None = None,
    down_payment: bool = False,
    interest_basis: InterestBasis = InterestBasis.PERIOD,
    start_date: date | npt.ArrayLike | None = None,
    business_day_rule: BusinessDayRule = BusinessDayRule.NONE,
    holiday_country: str = "CN",
    payment_tolerance: float = PAYMENT_BOUNDARY_TOLERANCE,
) -> ScheduleArrays:
    """Schedules for many loans at once, equal to :func:`runoff.servicing.schedule.build_schedule` to the cent.

    Per loan (1-D arrays, or scalars broadcast to every loan): ``method`` (a :class:`Method`, an alias,
    or an array of :data:`METHOD_CODES`), ``principal_fen``, ``term`` (installments; terms may differ,
    the result is padded to the longest), ``annual_rate_units`` (interest methods) and
    ``fee_rate_units`` (flat fee per period), both in 1e-8 units (see :func:`rate_units`), and
    ``grace_periods`` (interest-only grace). Per call: the frequency, rounding mode, ``multiple_of_fen``
    (installments rounded to this many fen, e.g. 100 for whole yuan), ``down_payment`` and the
    business-day rule. ``start_date`` (a date or a ``datetime64[D]`` array) adds due dates.
    ``payment_tolerance`` is the relative band around a rounding boundary within which level payments
    are recomputed in Decimal (tests widen it to force the Decimal route).
    """
    interest_basis = InterestBasis(interest_basis)
    if interest_basis is not InterestBasis.PERIOD:
        raise ScheduleInvalid(
            f"`interest_basis`: {interest_basis.value} is not supported by the vectorized path; "
            "expected period (schedule daily-accrual loans with runoff.servicing.schedule.build_schedule)",
            field="interest_basis",
        )
    rounding = RoundingMode(rounding)
    frequency = Frequency(frequency)
    grace_kind = GraceKind(grace_kind)
    business_day_rule = BusinessDayRule(business_day_rule)
    given: dict[str, npt.NDArray[Any]] = {
        "principal_fen": _int_array(principal_fen, "principal_fen"),
        "term": _int_array(term, "term"),
        "method": _method_array(method),
        "annual_rate_units": _int_array(annual_rate_units, "annual_rate_units"),
        "fee_rate_units": _int_array(fee_rate_units, "fee_rate_units"),
        "grace_periods": _int_array(grace_periods, "grace_periods"),
    }
    n_loans = _loan_count(given)
    principal, terms, codes, annual, fee, grace = (_broadcast(v, n_loans) for v in given.values())
    _validate(codes, principal, terms, annual, fee, grace, multiple_of_fen, down_payment)

    width = int(terms.max()) if n_loans else 0
    present = np.unique(codes)
    blocks: list[IntArray] = []
    if present.size != 1:
        blocks = [np.zeros((width, n_loans), dtype=np.int64) for _ in range(5)]
    for code in present.tolist():
        rows: slice | IntArray = slice(None) if present.size == 1 else np.flatnonzero(codes == code)
        kernel = _Kernel(
            method=_METHODS_BY_CODE[int(code)],
            principal=principal[rows],
            term=terms[rows],
            annual=annual[rows],
            fee=fee[rows],
            grace=grace[rows],
            grace_kind=grace_kind,
            periods_per_year=frequency.periods_per_year,
            rounding=rounding,
            multiple=multiple_of_fen,
            down_payment=down_payment,
            tolerance=payment_tolerance,
        )
        parts = kernel.run()
        if present.size == 1:
            blocks = list(parts)  # one method: the kernel's blocks are the result, no copy
        else:
            for block, part in zip(blocks, parts, strict=True):
                block[: part.shape[0], rows] = part

    due: DateArray | None = None
    if start_date is not None:
        due = due_dates(
            start_date,
            terms,
            frequency=frequency,
            down_payment=down_payment,
            business_day_rule=business_day_rule,
            holiday_country=holiday_country,
        )
    for block in blocks:
        block.flags.writeable = False
    installments = terms.copy()
    installments.flags.writeable = False
    return ScheduleArrays(
        principal_fen=blocks[0].T,
        interest_fen=blocks[1].T,
        fee_fen=blocks[2].T,
        balance_after_fen=blocks[3].T,
        capitalized_fen=blocks[4].T,
        installments=installments,
        due_date=due,
    )


def schedules_for_products(
    products: Product | Sequence[Product],
    *,
    principal_fen: npt.ArrayLike,
    term: npt.ArrayLike,
    product_index: npt.ArrayLike | None = None,
    start_date: date | npt.ArrayLike | None = None,
    payment_tolerance: float = PAYMENT_BOUNDARY_TOLERANCE,
) -> ScheduleArrays:
    """Schedules for a book whose loans are written on runoff :class:`Product` s.

    ``product_index[i]`` names loan ``i``'s product in ``products`` (omit it for a single product).
    Loans are grouped by the call-level terms (frequency, rounding, multiple, down payment, business-day
    rule) and each group is scheduled by :func:`build_schedules`; method, rate, fee and grace come from
    each loan's product.
    """
    catalogue = [products] if isinstance(products, Product) else list(products)
    if not catalogue:
        raise ScheduleInvalid("`products`: expected at least one product", field="products")
    given: dict[str, npt.NDArray[Any]] = {
        "principal_fen": _int_array(principal_fen, "principal_fen"),
        "term": _int_array(term, "term"),
    }
    if product_index is not None:
        given["product_index"] = _int_array(product_index, "product_index")
    elif len(catalogue) != 1:
        raise ScheduleInvalid("`product_index`: required when more than one product is given", field="product_index")
    n_loans = _loan_count(given)
    principal = _broadcast(given["principal_fen"], n_loans)
    terms = _broadcast(given["term"], n_loans)
    index = _broadcast(given.get("product_index", np.zeros((), dtype=np.int64)), n_loans)
    outside = (index < 0) | (index >= len(catalogue))
    if outside.any():
        raise ScheduleInvalid(
            f"`product_index`: {int(index[outside][0])} is not allowed; expected 0 to {len(catalogue) - 1}",
            field="product_index",
        )

    for product in catalogue:
        _check_product_in_scope(product)
    codes = np.asarray([METHOD_CODES[p.method] for p in catalogue], dtype=np.int8)[index]
    annual = np.asarray(
        [int(rate_units(p.annual_rate or Decimal(0), field=f"{p.id}.annual_rate")) for p in catalogue], dtype=np.int64
    )[index]
    fee = np.asarray(
        [int(rate_units(p.fee_rate or Decimal(0), field=f"{p.id}.fee_rate")) for p in catalogue], dtype=np.int64
    )[index]
    grace = np.asarray([p.grace_periods for p in catalogue], dtype=np.int64)[index]

    keys = [_call_key(p) for p in catalogue]
    distinct = sorted(set(keys), key=keys.index)
    group_of_product = np.asarray([distinct.index(k) for k in keys], dtype=np.int64)
    group = group_of_product[index]
    starts = None if start_date is None else _date_array(start_date, n_loans)

    results: list[tuple[IntArray | slice, ScheduleArrays]] = []
    for g, key in enumerate(distinct):
        rows: IntArray | slice = slice(None) if len(distinct) == 1 else np.flatnonzero(group == g).astype(np.int64)
        frequency, mode, multiple, down, grace_kind, rule, country = key
        part = build_schedules(
            codes[rows],
            principal_fen=principal[rows],
            term=terms[rows],
            annual_rate_units=annual[rows],
            fee_rate_units=fee[rows],
            grace_periods=grace[rows],
            frequency=frequency,
            rounding=mode,
            multiple_of_fen=multiple,
            down_payment=down,
            grace_kind=grace_kind,
            start_date=None if starts is None else starts[rows],
            business_day_rule=rule,
            holiday_country=country,
            payment_tolerance=payment_tolerance,
        )
        if len(distinct) == 1:
            return part
        results.append((rows, part))
    return _merge(results, n_loans, terms, with_dates=starts is not None)


def due_dates(
    start_date: date | npt.ArrayLike,
    term: npt.ArrayLike,
    *,
    frequency: Frequency = Frequency.MONTHLY,
    down_payment: bool = False,
    business_day_rule: BusinessDayRule = BusinessDayRule.NONE,
    holiday_country: str = "CN",
) -> DateArray:
    """Due dates ``(loans × periods)`` as datetime64[D], NaT past each term.

    Monthly dates keep the drawing day, clamped to the month's last day (drawn 31 Jan 2024: 29 Feb,
    31 Mar, 30 Apr); biweekly / weekly add 14 / 7 days. With a down payment installment 1 falls due on
    the drawing date. A business-day rule moves each distinct date once through the holiday calendar.
    """
    terms = _int_array(term, "term")
    starts = np.asarray(start_date, dtype="datetime64[D]")
    n_loans = _loan_count({"start_date": starts, "term": terms})
    terms = _broadcast(terms, n_loans)
    starts = _date_array(starts, n_loans)
    width = int(terms.max()) if n_loans else 0
    offsets = np.arange(width, dtype=np.int64) + (0 if down_payment else 1)
    start_day = starts.astype(np.int64)  # days since 1970-01-01
    days = np.empty((width, n_loans), dtype=np.int64)
    if n_loans and frequency is Frequency.MONTHLY:
        # Calendar maths once per month in a small table, then integer gathers for every loan.
        month0 = starts.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        day0 = start_day - month0.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        low = int(month0.min())
        table = np.arange(low, int(month0.max()) + width + 2).astype("datetime64[M]")
        first_day = table.astype("datetime64[D]").astype(np.int64)
        last_index = np.diff(first_day) - 1  # the month's last day, 0-based
        for col, offset in enumerate(offsets.tolist()):
            month = month0 - (low - offset)
            np.minimum(day0, last_index[month], out=days[col])
            days[col] += first_day[month]
    elif n_loans:
        step = 14 if frequency is Frequency.BIWEEKLY else 7
        np.add(start_day[None, :], offsets[:, None] * step, out=days)
    if business_day_rule is not BusinessDayRule.NONE and width:
        # The down payment is taken at checkout, on the drawing date: it never moves.
        moved = days[1:] if down_payment else days
        moved[...] = _business_adjusted(moved, BusinessCalendar(holiday_country), business_day_rule)
    out: DateArray = days.view("datetime64[D]")
    if n_loans and int(terms.min()) < width:
        out[np.arange(width)[:, None] >= terms[None, :]] = np.datetime64("NaT")
    out.flags.writeable = False
    result: DateArray = out.T
    return result


# --- the kernel -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kernel:
    """One method's schedules over a group of loans, column by column (period-major blocks)."""

    method: Method
    principal: IntArray
    term: IntArray
    annual: IntArray
    fee: IntArray
    grace: IntArray
    grace_kind: GraceKind
    periods_per_year: int
    rounding: RoundingMode
    multiple: int | None
    down_payment: bool
    tolerance: float

    def run(self) -> tuple[IntArray, ...]:
        """Blocks ``(periods × loans)``: principal, interest, fee, balance after, capitalized interest."""
        n_loans = self.principal.shape[0]
        width = int(self.term.max()) if n_loans else 0
        method, mode, multiple = self.method, self.rounding, self.multiple
        # Blocks written in full below are left uninitialised: zero-filling 10^8 cells costs as much as
        # computing them. Untouched blocks (fees of interest loans, capitalized) are lazily zeroed pages.
        shape = (width, n_loans)
        principal_out, balance_out = np.empty(shape, dtype=np.int64), np.empty(shape, dtype=np.int64)
        interest_out = np.zeros(shape, dtype=np.int64) if method is Method.FLAT_FEE else np.empty(shape, np.int64)
        fee_out, capitalized_out = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
        out = (principal_out, interest_out, fee_out, balance_out, capitalized_out)
        if n_loans == 0:
            return out
        balance: IntArray = self.principal
        first = 0
        if self.down_payment:
            # 首付: installment 1 on the drawing date, m(P/n) but at most P, no interest or fee.
            down = _round_div(self.principal, self.term * (multiple or 1), mode) * (multiple or 1)
            np.minimum(down, balance, out=principal_out[0])
            np.subtract(balance, principal_out[0], out=balance_out[0])
            balance = balance_out[0]
            if method is not Method.FLAT_FEE:
                interest_out[0] = 0
            first = 1
        grace_end = first + self.grace  # the first amortizing column of each loan
        longest_grace = first + int(self.grace.max())
        capitalize = self.grace_kind is GraceKind.CAPITALIZE and longest_grace > first
        if capitalize and method is Method.FLAT_FEE:
            raise ScheduleInvalid(
                "`grace_kind`: capitalize is not allowed for flat-fee loans; expected interest-only",
                field="grace_kind",
            )
        interest_den = RATE_SCALE * self.periods_per_year
        scratch = np.empty(n_loans, dtype=np.int64)

        # The amortizing phase repays ``base`` over ``count`` periods as if a new loan (after the grace).
        base = balance
        if capitalize:
            grown = np.empty(n_loans, dtype=np.int64)
            for col in range(first, longest_grace):
                _check_balance_bound(base)
                self._interest_into(base, grown, scratch, interest_den)
                base = base + np.where(col < grace_end, grown, 0)
        count = np.maximum(self.term - grace_end, 1)

        level: IntArray | None = None
        constant: IntArray | None = None
        flat_fee: IntArray | None = None
        if method is Method.EQUAL_INSTALLMENT:
            level = self._level_payment(base, count)
        elif method in (Method.EQUAL_PRINCIPAL, Method.FLAT_FEE) and multiple is None:
            constant = _round_div(base, count, mode)
        if method is Method.FLAT_FEE:
            flat_fee = _round_div_even_den(self.principal * self.fee, RATE_SCALE, mode)

        shortest = int(self.term.min())
        for col in range(first, width):
            interest, paid = interest_out[col], principal_out[col]
            if method is Method.FLAT_FEE:
                assert flat_fee is not None
                fee_out[col] = flat_fee
            else:
                self._interest_into(balance, interest, scratch, interest_den)

            if method is Method.EQUAL_INSTALLMENT:
                assert level is not None
                np.subtract(level, interest, out=paid)
            elif constant is not None:
                paid[:] = constant
            elif method is Method.INTEREST_ONLY:
                paid.fill(0)
            else:
                assert multiple is not None
                # m(P/n + I) − I: the installment total, not the principal, is the round multiple.
                extra = interest if method is Method.EQUAL_PRINCIPAL else flat_fee
                assert extra is not None
                paid[:] = _round_div(base + count * extra, count * multiple, mode) * multiple - extra
            if col >= shortest - 1:
                np.copyto(paid, balance, where=self.term - 1 == col)  # the last installment takes the rest
            # Rounding (to a multiple, or of tiny loans) can ask for more than the balance or less than zero.
            np.minimum(paid, balance, out=paid)
            if multiple is not None:
                np.maximum(paid, 0, out=paid)
            if col < longest_grace:
                in_grace = col < grace_end
                np.copyto(paid, 0, where=in_grace)
                if capitalize:
                    # 资本化: nothing falls due; the period's interest is added to the balance.
                    np.copyto(capitalized_out[col], interest, where=in_grace)
                    balance = balance + capitalized_out[col]
                    np.copyto(interest, 0, where=in_grace)
            if col >= shortest:
                past = col >= self.term
                for row in (paid, interest, fee_out[col]):
                    np.copyto(row, 0, where=past)
            np.subtract(balance, paid, out=balance_out[col])
            balance = balance_out[col]
        return out

    def _interest_into(self, balance: IntArray, out: IntArray, scratch: IntArray, den: int) -> None:
        """Period interest ``q(B × A / ppy)`` in fen, exactly, into ``out`` (bound: :data:`MAX_PRINCIPAL_FEN`)."""
        np.multiply(balance, self.annual, out=scratch)
        scratch += den // 2
        np.floor_divide(scratch, den, out=out)  # floor(B·a/den + 1/2): half-up
        if self.rounding is RoundingMode.HALF_EVEN:
            # An exact tie lands on out × den == scratch; half-even then keeps the even neighbour.
            out -= (out * den == scratch) & (out & 1 == 1)

    def _level_payment(self, amount: IntArray, periods: IntArray) -> IntArray:
        """等额本息 payment ``m(P r / (1 − (1 + r)^−n))`` in fen: float64, exact rationals near boundaries."""
        mode, multiple = self.rounding, self.multiple
        unit = 1 if multiple is None else multiple
        rate = self.annual / float(RATE_SCALE * self.periods_per_year)
        zero_rate = self.annual == 0
        rate[zero_rate] = 1.0  # a placeholder: r = 0 loans are paid m(P / n) below, without the float
        # 1 − (1 + r)^−n = −expm1(−n · log1p(r)): no cancellation for small r; a few ulps in all.
        growth = np.log1p(rate)
        growth *= -periods
        np.expm1(growth, out=growth)
        exact = amount * rate
        exact /= growth
        exact *= -1.0 / unit if unit != 1 else -1.0
        exact[zero_rate] = 0.0
        units = np.floor(exact)
        fraction = exact - units
        payment: IntArray = units.astype(np.int64)
        payment += fraction > 0.5
        # The float is within ~1e-15 (relative) of the exact payment; where that could straddle a rounding
        # boundary (ties included), take the Decimal engine's exact rational instead.
        fraction -= 0.5
        np.abs(fraction, out=fraction)
        near = np.flatnonzero((fraction <= self.tolerance * np.maximum(exact, 1.0)) & ~zero_rate)
        if unit != 1:
            payment *= unit
        if zero_rate.any():
            # r = 0: m(P / n), by integer division.
            payment[zero_rate] = _round_div(amount[zero_rate], periods[zero_rate] * unit, mode) * unit
        if near.size:
            payment[near] = [
                _exact_level_payment(int(amount[i]), int(self.annual[i]), int(periods[i]), self.periods_per_year,
                                     mode, multiple)
                for i in near.tolist()
            ]  # fmt: skip
        return payment


def _check_balance_bound(balance: IntArray) -> None:
    """Capitalised interest grows balances: keep them within the int64 bound of :data:`MAX_PRINCIPAL_FEN`."""
    if int(balance.max(initial=0)) > MAX_PRINCIPAL_FEN:
        raise ScheduleInvalid(
            f"`principal_fen`: a balance grows to {int(balance.max())} fen by capitalised interest; "
            f"expected at most {MAX_PRINCIPAL_FEN} fen",
            field="principal_fen",
        )


def _exact_level_payment(
    amount_fen: int, annual_units: int, periods: int, periods_per_year: int, mode: RoundingMode, multiple: int | None
) -> int:
    """The Decimal engine's own level payment (exact rationals) in fen, for the loans the float cannot decide."""
    rule = Rounding(mode=mode, multiple_of=None if multiple is None else Decimal(multiple) / 100)
    rate = Fraction(annual_units, RATE_SCALE) / periods_per_year
    payment = round_installment(annuity_payment(Fraction(amount_fen, 100), rate, periods), rule)
    return to_minor(payment)


# --- exact integer rounding -----------------------------------------------------------------------


def _round_div(num: IntArray, den: IntArray | int, mode: RoundingMode) -> IntArray:
    """``num / den`` rounded to an integer (num ≥ 0, den > 0) with the tie rule of ``mode``."""
    quotient = num // den
    twice_rest = 2 * (num - quotient * den)
    up = twice_rest > den
    tie = twice_rest == den
    if mode is RoundingMode.HALF_UP:
        up |= tie
    else:
        up |= tie & (quotient % 2 == 1)
    result: IntArray = quotient + up
    return result


def _round_div_even_den(num: IntArray, den: int, mode: RoundingMode) -> IntArray:
    """:func:`_round_div` for one even scalar ``den`` (10^8 × ppy): one shifted floor division."""
    shifted = num + den // 2
    quotient = shifted // den  # floor(num/den + 1/2): half-up
    if mode is RoundingMode.HALF_EVEN:
        # An exact tie lands on quotient × den == shifted; half-even then keeps the even neighbour.
        quotient -= (quotient * den == shifted) & (quotient % 2 == 1)
    return quotient


# --- validation and plumbing ----------------------------------------------------------------------


def _int_array(value: Any, field: str) -> IntArray:
    arr = np.asarray(value)
    if arr.dtype.kind == "b" or (arr.dtype.kind not in "iu" and arr.size):
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.rint(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ScheduleInvalid(f"`{field}`: expected whole numbers (integers), got {arr.dtype}", field=field)
    if arr.ndim > 1:
        raise ScheduleInvalid(f"`{field}`: expected a scalar or a 1-D array, got shape {arr.shape}", field=field)
    out: IntArray = arr.astype(np.int64, copy=False)
    return out


def _loan_count(arrays: dict[str, npt.NDArray[Any]]) -> int:
    """The number of loans: the common length of the 1-D arrays (scalars apply to every loan)."""
    lengths = {field: arr.shape[0] for field, arr in arrays.items() if arr.ndim == 1}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{field} {length}" for field, length in lengths.items())
        raise ScheduleInvalid(f"per-loan arrays differ in length ({listed}); expected one value per loan")
    return next(iter(lengths.values())) if lengths else 1


def _broadcast(arr: npt.NDArray[Any], n_loans: int) -> npt.NDArray[Any]:
    return np.broadcast_to(arr, (n_loans,)) if arr.ndim == 0 else arr


def _method_array(method: Any) -> npt.NDArray[np.int8]:
    if isinstance(method, Method | str):
        try:
            return np.asarray(METHOD_CODES[parse_method(method)], dtype=np.int8)
        except ValueError as exc:
            raise ScheduleInvalid(f"`method`: {exc}", field="method") from None
    codes = np.asarray(method)
    if codes.dtype.kind not in "iu":
        raise ScheduleInvalid("`method`: expected a Method, an alias or an array of method codes", field="method")
    if codes.size and (codes.min() < 0 or codes.max() > 3):
        raise ScheduleInvalid(
            f"`method`: code {int(codes[(codes < 0) | (codes > 3)].flat[0])} is not allowed; expected 0 to 3 "
            "(equal-installment, equal-principal, flat-fee, interest-only)",
            field="method",
        )
    return codes.astype(np.int8, copy=False)


def _validate(
    codes: npt.NDArray[np.int8],
    principal: IntArray,
    terms: IntArray,
    annual: IntArray,
    fee: IntArray,
    grace: IntArray,
    multiple_of_fen: int | None,
    down_payment: bool,
) -> None:
    checks: list[tuple[str, IntArray, BoolArray, str]] = [
        ("principal_fen", principal, (principal <= 0) | (principal > MAX_PRINCIPAL_FEN),
         f"expected 1 to {MAX_PRINCIPAL_FEN} fen"),
        ("term", terms, (terms < 1) | (terms > MAX_TERM), f"expected 1 to {MAX_TERM} periods"),
        ("annual_rate_units", annual, (annual < 0) | (annual > RATE_SCALE),
         f"expected 0 to {RATE_SCALE} (a fraction from 0 to 1 in 1e-8 units)"),
        ("fee_rate_units", fee, (fee < 0) | (fee > RATE_SCALE // 10),
         f"expected 0 to {RATE_SCALE // 10} (a fraction from 0 to 0.1 in 1e-8 units)"),
        ("grace_periods", grace, (grace < 0) | (grace >= terms), "expected 0 up to the term minus one"),
        ("fee_rate_units", fee, (codes != METHOD_CODES[Method.FLAT_FEE]) & (fee != 0),
         "expected 0: only flat-fee loans are priced by a fee"),
        ("annual_rate_units", annual, (codes == METHOD_CODES[Method.FLAT_FEE]) & (annual != 0),
         "expected 0: flat-fee loans are priced by fee_rate_units"),
    ]  # fmt: skip
    for field, values, bad, allowed in checks:
        if bad.any():
            raise ScheduleInvalid(f"`{field}`: {int(values[bad][0])} is not allowed; {allowed}", field=field)
    if multiple_of_fen is not None and (not isinstance(multiple_of_fen, int) or multiple_of_fen <= 0):
        raise ScheduleInvalid(
            f"`multiple_of_fen`: {multiple_of_fen!r} is not allowed; expected a positive whole number of fen",
            field="multiple_of_fen",
        )
    if down_payment and grace.any():
        raise ScheduleInvalid(
            "`grace_periods`: a down payment and grace periods cannot be combined", field="grace_periods"
        )
    if down_payment and (terms < 2).any():
        raise ScheduleInvalid(
            f"`term`: {int(terms[terms < 2][0])} is not allowed with a down payment; expected 2 to {MAX_TERM}",
            field="term",
        )


def _check_product_in_scope(product: Product) -> None:
    if product.interest_basis is not InterestBasis.PERIOD:
        raise ScheduleInvalid(
            f"product {product.id}: interest_basis {product.interest_basis.value} is not supported by the "
            "vectorized path; expected period (use runoff.servicing.schedule.build_schedule)",
            field="interest_basis",
        )


def _call_key(product: Product) -> tuple[Frequency, RoundingMode, int | None, bool, GraceKind, BusinessDayRule, str]:
    multiple = product.rounding.multiple_of
    multiple_fen: int | None = None
    if multiple is not None:
        scaled = multiple * 100
        if scaled != scaled.to_integral_value():
            raise ScheduleInvalid(
                f"product {product.id}: rounding.multiple_of {multiple} is not a whole number of cents; "
                "the vectorized path rounds to whole fen",
                field="rounding.multiple_of",
            )
        multiple_fen = int(scaled)
    return (
        product.frequency,
        product.rounding.mode,
        multiple_fen,
        product.down_payment,
        product.grace_kind,
        product.business_day_rule,
        product.holiday_country,
    )


def _date_array(value: Any, n_loans: int) -> DateArray:
    arr = np.asarray(value, dtype="datetime64[D]")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n_loans):
        raise ScheduleInvalid(f"`start_date`: {arr.size} dates for {n_loans} loans", field="start_date")
    if np.isnat(arr).any():
        raise ScheduleInvalid("`start_date`: missing (NaT) drawing dates", field="start_date")
    out: DateArray = np.broadcast_to(arr, (n_loans,))
    return out


def _business_adjusted(days: IntArray, calendar: BusinessCalendar, rule: BusinessDayRule) -> IntArray:
    """Days (since 1970-01-01) moved by ``rule``: each day of the covered range through the calendar once."""
    low = int(days.min())
    span = np.arange(low, int(days.max()) + 1).astype("datetime64[D]")
    moved = np.asarray([calendar.adjust(d, rule) for d in span.tolist()], dtype="datetime64[D]").astype(np.int64)
    result: IntArray = moved[days - low]
    return result


def _merge(
    parts: list[tuple[IntArray | slice, ScheduleArrays]], n_loans: int, terms: IntArray, *, with_dates: bool
) -> ScheduleArrays:
    width = int(terms.max()) if n_loans else 0
    blocks = [np.zeros((width, n_loans), dtype=np.int64) for _ in range(5)]
    due = np.full((width, n_loans), np.datetime64("NaT"), dtype="datetime64[D]") if with_dates else None
    for rows, part in parts:
        w = part.n_periods
        for block, values in zip(
            blocks,
            (part.principal_fen, part.interest_fen, part.fee_fen, part.balance_after_fen, part.capitalized_fen),
            strict=True,
        ):
            block[:w, rows] = values.T
        if due is not None and part.due_date is not None:
            due[:w, rows] = part.due_date.T
    for block in blocks:
        block.flags.writeable = False
    installments = terms.copy()
    installments.flags.writeable = False
    if due is not None:
        due.flags.writeable = False
    return ScheduleArrays(
        principal_fen=blocks[0].T,
        interest_fen=blocks[1].T,
        fee_fen=blocks[2].T,
        balance_after_fen=blocks[3].T,
        capitalized_fen=blocks[4].T,
        installments=installments,
        due_date=None if due is None else due.T,
    )
