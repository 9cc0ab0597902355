"""The one rounding policy for money: Decimal amounts, integer minor units (fen) in storage.

Ledger amounts are stored as integer fen; servicing code computes in ``Decimal`` and rounds
with :func:`quantize` under the product's :class:`RoundingMode` (half-up unless the product
says half-even). Floats never cross into a posting: :func:`from_float` is the one named seam.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum

from runoff.errors import InvalidInput

CENT = Decimal("0.01")
ZERO = Decimal("0")


class RoundingMode(StrEnum):
    """How a computed amount is rounded to the cent (四舍五入 is half-up)."""

    HALF_UP = "half-up"
    HALF_EVEN = "half-even"

    @property
    def decimal_rounding(self) -> str:
        return ROUND_HALF_UP if self is RoundingMode.HALF_UP else ROUND_HALF_EVEN


def quantize(amount: Decimal, mode: RoundingMode = RoundingMode.HALF_UP, unit: Decimal = CENT) -> Decimal:
    """Round ``amount`` to ``unit`` (the cent by default) under ``mode``."""
    return amount.quantize(unit, rounding=mode.decimal_rounding)


def round_to_multiple(amount: Decimal, multiple: Decimal, mode: RoundingMode = RoundingMode.HALF_UP) -> Decimal:
    """Round ``amount`` to a multiple of ``multiple`` (e.g. whole yuan), then to the cent."""
    if multiple <= 0:
        raise InvalidInput(f"`multiple_of`: {multiple} is not allowed; expected a positive amount", field="multiple_of")
    units = (amount / multiple).quantize(Decimal(1), rounding=mode.decimal_rounding)
    return quantize(units * multiple, mode)


def to_minor(amount: Decimal) -> int:
    """Convert a cent-exact amount to integer minor units (fen); refuses sub-cent amounts."""
    scaled = amount * 100
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"amount {amount} has more than two decimals; round it before storing")
    return int(scaled)


def from_minor(amount_fen: int) -> Decimal:
    """Convert integer minor units (fen) to a Decimal amount with two decimals."""
    return (Decimal(amount_fen) / 100).quantize(CENT)


def from_float(value: float, mode: RoundingMode = RoundingMode.HALF_UP) -> Decimal:
    """The one seam where a float (analytics, simulation) becomes money: via its shortest repr."""
    return quantize(Decimal(repr(float(value))), mode)


def parse_amount(text: str | int | Decimal, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """Parse a user-given amount ("1234.5", 1234, Decimal) into a non-negative cent-exact Decimal."""
    try:
        value = text if isinstance(text, Decimal) else Decimal(str(text).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise InvalidInput(
            f"`{field}`: {text!r} is not a number; expected an amount like 1234.56", field=field
        ) from None
    if not value.is_finite():
        raise InvalidInput(f"`{field}`: {text!r} is not a finite amount", field=field)
    if value < 0 or (value == 0 and not allow_zero):
        expected = "zero or more" if allow_zero else "more than zero"
        raise InvalidInput(f"`{field}`: {value} is not allowed; expected an amount {expected}", field=field)
    if value != value.quantize(CENT):
        raise InvalidInput(f"`{field}`: {value} has more than two decimals; expected whole cents", field=field)
    return value.quantize(CENT)
