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
* The level payment ``P r / (1 − (1 + r)^−n)`` (a rational, but with a huge denominator) is computed
  in float64 (``log1p``/``expm1``, a few ulps of relative error). A loan whose float payment lies
  within :data:`PAYMENT_BOUNDARY_TOLERANCE` of a rounding boundary (a band thousands of times wider
  than the float error; about one loan in a million at usual sizes, and every exact half-cent tie) is
  recomputed by the Decimal engine's own exact formula (``annuity_payment`` + ``round_installment``).
  Everywhere else the float and the exact value round the same way, so the payment is the Decimal
  engine's on every loan.

Scope: period-basis interest (``interest_basis: period``) for the four methods, both rounding modes,
``multiple_of`` in whole fen (with the Decimal engine's clamp to [0, balance]), grace periods of both
kinds, a down payment, monthly / biweekly / weekly due dates with the month-end clamp and an optional
business-day rule. Interest that accrues by day (``interest_basis: daily``) is out of scope and raises
:class:`~runoff.errors.ScheduleInvalid`: schedule such loans with
:func:`runoff.servicing.schedule.build_schedule`. For books of many millions of loans, call per chunk
of about a million: the result takes 5 × 8 bytes × loans × periods.
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

Bound: a balance never exceeds the principal (capitalising grace periods are checked against this
bound as the balance grows) and an annual rate is at most 1 (``a ≤ 10^8``), so the interest numerator ``B × a + den / 2 ≤ 9·10^10 × 10^8 + 52·10^8 / 2
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
"""Relative distance to a rounding boundary under which a float level payment is recomputed exactly.

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
    grace_kind: GraceKind | str | npt.ArrayLike = GraceKind.INTEREST_ONLY,
    rounding: RoundingMode | str | npt.ArrayLike = RoundingMode.HALF_UP,
    multiple_of_fen: int | npt.ArrayLike | None = None,
    down_payment: bool | npt.ArrayLike = False,
    frequency: Frequency = Frequency.MONTHLY,
    interest_basis: InterestBasis = InterestBasis.PERIOD,
    start_date: date | npt.ArrayLike | None = None,
    business_day_rule: BusinessDayRule = BusinessDayRule.NONE,
    holiday_country: str = "CN",
    payment_tolerance: float = PAYMENT_BOUNDARY_TOLERANCE,
) -> ScheduleArrays:
    """Schedules for many loans at once, equal to :func:`runoff.servicing.schedule.build_schedule` to the cent.

    Per loan (1-D arrays, or scalars that apply to every loan): ``method`` (a :class:`Method`, an alias,
    or :data:`METHOD_CODES`), ``principal_fen``, ``term`` (installments; terms may differ, the result is
    padded to the longest), ``annual_rate_units`` (interest methods) and ``fee_rate_units`` (flat fee per
    period), both in 1e-8 units (see :func:`rate_units`), ``grace_periods`` and ``grace_kind``,
    ``rounding`` (a mode, or an array of modes), ``multiple_of_fen`` (installments rounded to this many
    fen, e.g. 100 for whole yuan; ``None`` or 0: to the cent) and ``down_payment``. A mixed book runs
    in one pass. Per call: the frequency and, with ``start_date`` (a date or a ``datetime64[D]``
    array), the due dates and their business-day rule. ``payment_tolerance`` is the relative band
    around a rounding boundary within which level payments are recomputed exactly (tests widen it to
    force the exact route, or set 0 to show what the float alone would do).
    """
    interest_basis = InterestBasis(interest_basis)
    if interest_basis is not InterestBasis.PERIOD:
        raise ScheduleInvalid(
            f"`interest_basis`: {interest_basis.value} is not supported by the vectorized path; "
            "expected period (schedule daily-accrual loans with runoff.servicing.schedule.build_schedule)",
            field="interest_basis",
        )
    frequency = Frequency(frequency)
    business_day_rule = BusinessDayRule(business_day_rule)
    given: dict[str, npt.NDArray[Any]] = {
        "principal_fen": _int_array(principal_fen, "principal_fen"),
        "term": _int_array(term, "term"),
        "method": _method_array(method),
        "annual_rate_units": _int_array(annual_rate_units, "annual_rate_units"),
        "fee_rate_units": _int_array(fee_rate_units, "fee_rate_units"),
        "grace_periods": _int_array(grace_periods, "grace_periods"),
        "grace_kind": _flag_array(grace_kind, GraceKind, GraceKind.CAPITALIZE, "grace_kind"),
        "rounding": _flag_array(rounding, RoundingMode, RoundingMode.HALF_EVEN, "rounding"),
        "multiple_of_fen": _int_array(0 if multiple_of_fen is None else multiple_of_fen, "multiple_of_fen"),
        "down_payment": _bool_array(down_payment, "down_payment"),
    }
    n_loans = _loan_count(given)
    _validate(given)
    per_loan = {field: _broadcast(values, n_loans) for field, values in given.items()}
    book = _Book(
        method=per_loan["method"],
        principal=per_loan["principal_fen"],
        term=per_loan["term"],
        annual=per_loan["annual_rate_units"],
        fee=per_loan["fee_rate_units"],
        grace=per_loan["grace_periods"],
        capitalize=per_loan["grace_kind"],
        half_even=per_loan["rounding"],
        multiple=per_loan["multiple_of_fen"],
        down_payment=per_loan["down_payment"],
        periods_per_year=frequency.periods_per_year,
        tolerance=payment_tolerance,
    )
    blocks = book.schedule()
    due: DateArray | None = None
    if start_date is not None:
        due = due_dates(
            start_date,
            book.term,
            frequency=frequency,
            down_payment=book.down_payment,
            business_day_rule=business_day_rule,
            holiday_country=holiday_country,
        )
    return _result(blocks, book.term, due)


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

    ``product_index[i]`` names loan ``i``'s product in ``products`` (omit it for a single product); the
    method, rate, fee, grace, rounding and down payment come from each loan's product. Products that
    differ in frequency (or, with start dates, in business-day rule) are scheduled in separate passes
    and merged; everything else runs in one pass.
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

    settings = [_product_terms(p) for p in catalogue]
    per_loan = {key: np.asarray([row[key] for row in settings])[index] for key in settings[0]}
    starts = None if start_date is None else _date_array(start_date, n_loans)

    # One pass per frequency (its interest divisor) and, when dates are asked for, per holiday calendar.
    def pass_key(product: Product) -> tuple[Frequency, BusinessDayRule, str]:
        if starts is None or product.business_day_rule is BusinessDayRule.NONE:
            return (product.frequency, BusinessDayRule.NONE, "CN")
        return (product.frequency, product.business_day_rule, product.holiday_country)

    keys = [pass_key(p) for p in catalogue]
    distinct = list(dict.fromkeys(keys))
    group = np.asarray([distinct.index(k) for k in keys], dtype=np.int64)[index]
    parts: list[tuple[IntArray | slice, ScheduleArrays]] = []
    for number, (frequency, rule, country) in enumerate(distinct):
        rows: IntArray | slice = slice(None) if len(distinct) == 1 else np.flatnonzero(group == number)
        part = build_schedules(
            per_loan["method"][rows],
            principal_fen=principal[rows],
            term=terms[rows],
            **{key: values[rows] for key, values in per_loan.items() if key != "method"},
            frequency=frequency,
            start_date=None if starts is None else starts[rows],
            business_day_rule=rule,
            holiday_country=country,
            payment_tolerance=payment_tolerance,
        )
        if len(distinct) == 1:
            return part
        parts.append((rows, part))
    return _merge(parts, n_loans, terms, with_dates=starts is not None)


def due_dates(
    start_date: date | npt.ArrayLike,
    term: npt.ArrayLike,
    *,
    frequency: Frequency = Frequency.MONTHLY,
    down_payment: bool | npt.ArrayLike = False,
    business_day_rule: BusinessDayRule = BusinessDayRule.NONE,
    holiday_country: str = "CN",
) -> DateArray:
    """Due dates ``(loans × periods)`` as datetime64[D], NaT past each term.

    Monthly dates keep the drawing day, clamped to the month's last day (drawn 31 Jan 2024: 29 Feb,
    31 Mar, 30 Apr); biweekly / weekly add 14 / 7 days. With a down payment (per call or per loan)
    installment 1 falls due on the drawing date and is never moved. A business-day rule moves each
    calendar day of the covered range once through the holiday calendar.
    """
    given: dict[str, npt.NDArray[Any]] = {
        "start_date": np.asarray(start_date, dtype="datetime64[D]"),
        "term": _int_array(term, "term"),
        "down_payment": _bool_array(down_payment, "down_payment"),
    }
    n_loans = _loan_count(given)
    starts = _date_array(given["start_date"], n_loans)
    terms = _broadcast(given["term"], n_loans)
    down = _broadcast(given["down_payment"], n_loans)
    width = int(terms.max()) if n_loans else 0
    start_day = starts.astype(np.int64)  # days since 1970-01-01
    days = np.empty((width, n_loans), dtype=np.int64)
    any_down = bool(down.any())
    if n_loans and frequency is Frequency.MONTHLY:
        # Calendar maths once per month in a small table, then integer gathers for every loan.
        month0 = starts.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        day0 = start_day - month0.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        low = int(month0.min())
        table = np.arange(low, int(month0.max()) + width + 2).astype("datetime64[M]")
        first_day = table.astype("datetime64[D]").astype(np.int64)
        last_index = np.diff(first_day) - 1  # the month's last day, 0-based
        for col in range(width):
            month = month0 - (low - col - 1)
            if any_down:
                month -= down  # installment k of a down-payment loan falls in month k − 1
            np.minimum(day0, last_index[month], out=days[col])
            days[col] += first_day[month]
    elif n_loans:
        step = 14 if frequency is Frequency.BIWEEKLY else 7
        offsets = np.arange(1, width + 1, dtype=np.int64)[:, None] - down[None, :]
        np.add(start_day[None, :], offsets * step, out=days)
    if business_day_rule is not BusinessDayRule.NONE and width:
        moved = _business_adjusted(days, BusinessCalendar(holiday_country), business_day_rule)
        if any_down:
            # The down payment is taken at checkout, on the drawing date: it never moves.
            np.copyto(moved[0], days[0], where=down)
        days = moved
    out: DateArray = days.view("datetime64[D]")
    if n_loans and int(terms.min()) < width:
        out[np.arange(width)[:, None] >= terms[None, :]] = np.datetime64("NaT")
    out.flags.writeable = False
    result: DateArray = out.T
    return result


def _validate(given: dict[str, npt.NDArray[Any]]) -> None:
    """One clear error naming the field and the first bad value (on the arrays before broadcasting)."""
    principal, term, method = given["principal_fen"], given["term"], given["method"]
    annual, fee, grace = given["annual_rate_units"], given["fee_rate_units"], given["grace_periods"]
    multiple, down_payment, capitalize = given["multiple_of_fen"], given["down_payment"], given["grace_kind"]
    flat = method == METHOD_CODES[Method.FLAT_FEE]
    checks: list[tuple[str, npt.NDArray[Any], npt.NDArray[np.bool_], str]] = [
        ("principal_fen", principal, (principal <= 0) | (principal > MAX_PRINCIPAL_FEN),
         f"expected 1 to {MAX_PRINCIPAL_FEN} fen"),
        ("term", term, (term < 1) | (term > MAX_TERM), f"expected 1 to {MAX_TERM} periods"),
        ("annual_rate_units", annual, (annual < 0) | (annual > RATE_SCALE),
         f"expected 0 to {RATE_SCALE} (a fraction from 0 to 1 in 1e-8 units)"),
        ("fee_rate_units", fee, (fee < 0) | (fee > RATE_SCALE // 10),
         f"expected 0 to {RATE_SCALE // 10} (a fraction from 0 to 0.1 in 1e-8 units)"),
        ("grace_periods", grace, (grace < 0) | (grace >= term),
         "expected 0 up to the term minus one"),
        ("multiple_of_fen", multiple, multiple < 0,
         "expected a positive whole number of fen (0 or None: round to the cent)"),
        ("fee_rate_units", fee, ~flat & (fee != 0), "expected 0: only flat-fee loans are priced by a fee"),
        ("annual_rate_units", annual, flat & (annual != 0),
         "expected 0: flat-fee loans are priced by fee_rate_units"),
        ("grace_periods", grace, down_payment & (grace != 0),
         "expected 0: a down payment and grace periods cannot be combined"),
        ("term", term, down_payment & (term < 2),
         f"expected 2 to {MAX_TERM} with a down payment"),
    ]  # fmt: skip
    for field, values, bad, allowed in checks:
        if bad.any():
            raise ScheduleInvalid(
                f"`{field}`: {int(np.broadcast_to(values, bad.shape)[bad].flat[0])} is not allowed; {allowed}",
                field=field,
            )
    if (flat & capitalize & (grace > 0)).any():
        raise ScheduleInvalid(
            "`grace_kind`: capitalize is not allowed for flat-fee loans; expected interest-only",
            field="grace_kind",
        )


# --- the kernel -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Book:
    """Per-loan terms of one pass (1-D arrays), and the column-by-column schedule kernel over them."""

    method: npt.NDArray[np.int8]
    principal: IntArray
    term: IntArray
    annual: IntArray
    fee: IntArray
    grace: IntArray
    capitalize: BoolArray
    half_even: BoolArray
    multiple: IntArray  # 0: no multiple
    down_payment: BoolArray
    periods_per_year: int
    tolerance: float

    def schedule(self) -> tuple[IntArray, ...]:
        """Blocks ``(periods × loans)``: principal, interest, fee, balance after, capitalized interest.

        Every method runs in the same pass: per period, principal is ``A − I`` for 等额本息 (A the level
        payment), ``A`` for 等额本金 / 等本等费 (A the share ``q(P/n)``), 0 for 先息后本, or with a multiple
        ``m(P/n + I + F) − I − F``; then the last installment takes the balance and every principal is
        clamped to [0, balance], which also zeroes the padding past each term (its balance is 0).
        """
        n_loans = self.principal.shape[0]
        width = int(self.term.max()) if n_loans else 0
        codes = self.method
        is_ei = codes == METHOD_CODES[Method.EQUAL_INSTALLMENT]
        is_flat = codes == METHOD_CODES[Method.FLAT_FEE]
        is_share = (codes == METHOD_CODES[Method.EQUAL_PRINCIPAL]) | is_flat
        any_flat, all_flat, all_ei = bool(is_flat.any()), bool(is_flat.all()), bool(is_ei.all())
        has_multiple = self.multiple > 0
        unit = np.where(has_multiple, self.multiple, 1)
        share_multiple = is_share & has_multiple
        any_share_multiple = bool(share_multiple.any())
        half_even = self.half_even if self.half_even.any() else None

        # Blocks written in full below are left uninitialised: zero-filling 10^8 cells costs as much as
        # computing them. Untouched blocks (fees of interest loans, capitalized) stay lazily zeroed pages.
        shape = (width, n_loans)
        principal_out, balance_out = np.empty(shape, dtype=np.int64), np.empty(shape, dtype=np.int64)
        interest_out = np.zeros(shape, dtype=np.int64) if all_flat else np.empty(shape, dtype=np.int64)
        fee_out, capitalized_out = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
        out = (principal_out, interest_out, fee_out, balance_out, capitalized_out)
        if n_loans == 0:
            return out

        first = self.down_payment.astype(np.int64)  # column of the first regular installment
        grace_end = first + self.grace  # the first amortizing column
        longest_grace = int(grace_end.max())
        any_down = bool(self.down_payment.any())
        capitalize = self.capitalize & (self.grace > 0)
        any_capitalize = bool(capitalize.any())
        interest_den = RATE_SCALE * self.periods_per_year
        scratch = np.empty(n_loans, dtype=np.int64)

        # The amortizing phase repays ``base`` over ``count`` periods as if a new loan.
        base = self.principal
        down = np.zeros(n_loans, dtype=np.int64)
        if any_down:
            # 首付: installment 1 on the drawing date, m(P/n) but at most P, no interest or fee.
            down = np.minimum(_round_div(self.principal, self.term * unit, half_even) * unit, self.principal)
            down[~self.down_payment] = 0
            base = self.principal - down
        if any_capitalize:
            grown = np.empty(n_loans, dtype=np.int64)
            for col in range(longest_grace):
                _check_balance_bound(base)
                self._interest_into(base, grown, scratch, interest_den, half_even)
                base = base + np.where(capitalize & (col < grace_end), grown, 0)
        count = self.term - grace_end

        amount = np.zeros(n_loans, dtype=np.int64)  # A: the level payment or the share
        if all_ei:
            amount = self._level_payment(base, count, self.annual, unit, half_even)
        elif is_ei.any():
            rows = np.flatnonzero(is_ei)
            amount[rows] = self._level_payment(
                base[rows], count[rows], self.annual[rows], unit[rows], None if half_even is None else half_even[rows]
            )
        if is_share.any():
            shares = _round_div(base, np.maximum(count, 1), half_even)
            np.copyto(amount, shares, where=is_share & ~has_multiple)
        flat_fee = _round_div_even_den(self.principal * self.fee, RATE_SCALE, half_even) if any_flat else None

        shortest = int(self.term.min())
        any_multiple = bool(has_multiple.any())
        balance = self.principal
        for col in range(width):
            interest, paid = interest_out[col], principal_out[col]
            if not all_flat:
                self._interest_into(balance, interest, scratch, interest_den, half_even)
            if all_ei:
                np.subtract(amount, interest, out=paid)
            else:
                paid[:] = amount
                np.subtract(amount, interest, out=paid, where=is_ei)
            if any_flat:
                assert flat_fee is not None
                fee_out[col] = flat_fee
                if col >= shortest:
                    np.copyto(fee_out[col], 0, where=col >= self.term)
            if any_share_multiple:
                # m(P/n + I + F) − I − F: the installment total, not the principal, is the round multiple
                # (I is 0 on flat-fee loans and F is 0 on the others).
                carried = interest if flat_fee is None else interest + flat_fee
                rounded = _round_div(base + count * carried, np.maximum(count, 1) * unit, half_even) * unit
                np.copyto(paid, rounded - carried, where=share_multiple)
            if col >= shortest - 1:
                np.copyto(paid, balance, where=self.term - 1 == col)  # the last installment takes the rest
            # Rounding (to a multiple, or of tiny loans) can ask for more than the balance or less than zero.
            np.minimum(paid, balance, out=paid)
            if any_multiple:
                np.maximum(paid, 0, out=paid)
            if col < longest_grace:
                in_grace = (col >= first) & (col < grace_end)
                np.copyto(paid, 0, where=in_grace)
                if any_capitalize:
                    # 资本化: nothing falls due; the period's interest is added to the balance.
                    grows = in_grace & capitalize
                    np.copyto(capitalized_out[col], interest, where=grows)
                    np.copyto(interest, 0, where=grows)
                    balance = balance + capitalized_out[col]
            if col == 0 and any_down:
                np.copyto(paid, down, where=self.down_payment)
                np.copyto(interest, 0, where=self.down_payment)
                if any_flat:
                    np.copyto(fee_out[0], 0, where=self.down_payment)
            np.subtract(balance, paid, out=balance_out[col])
            balance = balance_out[col]
        return out

    def _interest_into(
        self, balance: IntArray, out: IntArray, scratch: IntArray, den: int, half_even: BoolArray | None
    ) -> None:
        """Period interest ``q(B × A / ppy)`` in fen, exactly, into ``out`` (bound: :data:`MAX_PRINCIPAL_FEN`)."""
        np.multiply(balance, self.annual, out=scratch)
        scratch += den // 2
        np.floor_divide(scratch, den, out=out)  # floor(B·a/den + 1/2): half-up
        if half_even is not None:
            # An exact tie lands on out × den == scratch; half-even then keeps the even neighbour.
            out -= (out * den == scratch) & (out & 1 == 1) & half_even

    def _level_payment(
        self, amount: IntArray, periods: IntArray, annual: IntArray, unit: IntArray, half_even: BoolArray | None
    ) -> IntArray:
        """等额本息 payment ``m(P r / (1 − (1 + r)^−n))`` in fen: float64, exact rationals near boundaries."""
        zero_rate = annual == 0
        rate = annual / float(RATE_SCALE * self.periods_per_year)
        rate[zero_rate] = 1.0  # a placeholder: r = 0 loans pay m(P / n), computed below without the float
        # 1 − (1 + r)^−n = −expm1(−n · log1p(r)): no cancellation for small r; a few ulps in all.
        growth = np.log1p(rate)
        growth *= -periods
        np.expm1(growth, out=growth)
        exact = amount * rate
        exact /= growth
        exact /= -unit
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
        payment *= unit
        if zero_rate.any():
            flat = _round_div(amount, np.maximum(periods, 1) * unit, half_even) * unit
            np.copyto(payment, flat, where=zero_rate)
        for i in near.tolist():
            mode = RoundingMode.HALF_EVEN if half_even is not None and half_even[i] else RoundingMode.HALF_UP
            multiple = int(unit[i]) if unit[i] > 1 else None
            payment[i] = _exact_level_payment(
                int(amount[i]), int(annual[i]), max(int(periods[i]), 1), self.periods_per_year, mode, multiple
            )
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


def _round_div(num: IntArray, den: IntArray | int, half_even: BoolArray | None) -> IntArray:
    """``num / den`` rounded to an integer (num ≥ 0, den > 0): half-up, or half-even where ``half_even``."""
    quotient = num // den
    twice_rest = 2 * (num - quotient * den)
    up = twice_rest > den
    tie = twice_rest == den
    if half_even is None:
        up |= tie
    else:
        up |= tie & (~half_even | (quotient & 1 == 1))
    result: IntArray = quotient + up
    return result


def _round_div_even_den(num: IntArray, den: int, half_even: BoolArray | None) -> IntArray:
    """:func:`_round_div` for one even scalar ``den`` (10^8 × ppy): one shifted floor division."""
    shifted = num + den // 2
    quotient = shifted // den  # floor(num/den + 1/2): half-up
    if half_even is not None:
        # An exact tie lands on quotient × den == shifted; half-even then keeps the even neighbour.
        quotient -= (quotient * den == shifted) & (quotient & 1 == 1) & half_even
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


def _bool_array(value: Any, field: str) -> BoolArray:
    arr = np.asarray(value)
    if arr.dtype.kind != "b" or arr.ndim > 1:
        raise ScheduleInvalid(f"`{field}`: expected True / False or a 1-D array of them", field=field)
    return arr


def _flag_array(value: Any, kind: type[RoundingMode] | type[GraceKind], flagged: Any, field: str) -> BoolArray:
    """A two-valued setting per loan (rounding mode, grace kind) as a boolean: True where it is ``flagged``."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "b":
        if value.ndim > 1:
            raise ScheduleInvalid(f"`{field}`: expected a scalar or a 1-D array", field=field)
        return value
    allowed = ", ".join(m.value for m in kind)
    try:
        if isinstance(value, str):
            return np.asarray(kind(value) is flagged)
        return np.asarray([kind(v) is flagged for v in np.asarray(value, dtype=object).ravel()], dtype=np.bool_)
    except ValueError:
        raise ScheduleInvalid(f"`{field}`: {value!r} is not allowed; expected {allowed}", field=field) from None


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
    if codes.dtype.kind not in "iu" or codes.ndim > 1:
        raise ScheduleInvalid("`method`: expected a Method, an alias or a 1-D array of method codes", field="method")
    if codes.size and (codes.min() < 0 or codes.max() > 3):
        raise ScheduleInvalid(
            f"`method`: code {int(codes[(codes < 0) | (codes > 3)].flat[0])} is not allowed; expected 0 to 3 "
            "(equal-installment, equal-principal, flat-fee, interest-only)",
            field="method",
        )
    return codes.astype(np.int8, copy=False)


def _product_terms(product: Product) -> dict[str, int | bool]:
    """One product's per-loan settings in the units of :func:`build_schedules` (flags as booleans)."""
    if product.interest_basis is not InterestBasis.PERIOD:
        raise ScheduleInvalid(
            f"product {product.id}: interest_basis {product.interest_basis.value} is not supported by the "
            "vectorized path; expected period (use runoff.servicing.schedule.build_schedule)",
            field="interest_basis",
        )
    multiple = product.rounding.multiple_of
    multiple_fen = 0
    if multiple is not None:
        scaled = multiple * 100
        if scaled != scaled.to_integral_value():
            raise ScheduleInvalid(
                f"product {product.id}: rounding.multiple_of {multiple} is not a whole number of cents; "
                "the vectorized path rounds to whole fen",
                field="rounding.multiple_of",
            )
        multiple_fen = int(scaled)
    flat = product.method is Method.FLAT_FEE
    return {
        "method": METHOD_CODES[product.method],
        "annual_rate_units": 0
        if flat
        else int(rate_units(product.annual_rate or 0, field=f"{product.id}.annual_rate")),
        "fee_rate_units": int(rate_units(product.fee_rate or 0, field=f"{product.id}.fee_rate")) if flat else 0,
        "grace_periods": product.grace_periods,
        "grace_kind": product.grace_kind is GraceKind.CAPITALIZE,
        "rounding": product.rounding.mode is RoundingMode.HALF_EVEN,
        "multiple_of_fen": multiple_fen,
        "down_payment": product.down_payment,
    }


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


def _result(blocks: tuple[IntArray, ...], terms: IntArray, due: DateArray | None) -> ScheduleArrays:
    for block in blocks:
        block.flags.writeable = False
    installments = np.array(terms, dtype=np.int64)
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


def _merge(
    parts: list[tuple[IntArray | slice, ScheduleArrays]], n_loans: int, terms: IntArray, *, with_dates: bool
) -> ScheduleArrays:
    """Passes of different frequencies put back in the caller's loan order."""
    width = int(terms.max()) if n_loans else 0
    blocks = tuple(np.zeros((width, n_loans), dtype=np.int64) for _ in range(5))
    due = np.full((width, n_loans), np.datetime64("NaT"), dtype="datetime64[D]") if with_dates else None
    for rows, part in parts:
        w = part.n_periods
        values = (part.principal_fen, part.interest_fen, part.fee_fen, part.balance_after_fen, part.capitalized_fen)
        for block, value in zip(blocks, values, strict=True):
            block[:w, rows] = value.T
        if due is not None and part.due_date is not None:
            due[:w, rows] = part.due_date.T
    if due is not None:
        due.flags.writeable = False
    return _result(blocks, terms, None if due is None else due.T)
