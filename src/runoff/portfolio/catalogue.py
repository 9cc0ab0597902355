"""The synthetic book's product shelf and origination shape: terms, methods, prices, seasonality.

Prices are risk-based by grade A–E. The flat fee (等本等费) runs 0.5–0.8 % a month on the original
principal, whose APR by IRR is far above fee × 12 (0.6 % over 12 months ≈ 13 % nominal); interest
products run 12–24 % a year, 24 % being the ceiling of China's judicial protection for private lending
(最高人民法院民间借贷司法解释, 2020 revision ties it to 4× LPR; 24 % is the common industry cap).
"""

from __future__ import annotations

from decimal import Decimal

from runoff.portfolio.behaviour import GRADES
from runoff.servicing.product import Method, Product

TERMS: tuple[int, ...] = (3, 6, 12, 24)
MAX_TERM = max(TERMS)

SEASONALITY: tuple[float, ...] = (1.00, 0.80, 0.90, 0.95, 1.00, 1.60, 0.95, 0.95, 1.00, 1.05, 1.80, 1.20)
"""Origination intensity by calendar month: Spring Festival dip in February, 618 in June, 双11 in November, 双12."""

METHOD_ORDER: tuple[Method, ...] = (
    Method.EQUAL_INSTALLMENT,
    Method.EQUAL_PRINCIPAL,
    Method.FLAT_FEE,
    Method.INTEREST_ONLY,
)
METHOD_SHARES: tuple[float, ...] = (0.30, 0.10, 0.55, 0.05)
ANNUAL_RATE_BY_GRADE: tuple[str, ...] = ("0.12", "0.15", "0.18", "0.21", "0.24")
"""Risk-based annual rates, A to E; 24 % is the ceiling of China's judicial protection for private lending."""
FEE_RATE_BY_GRADE: tuple[str, ...] = ("0.005", "0.006", "0.007", "0.0075", "0.008")
"""Flat fee a month on the original principal, A to E (0.5–0.8 %; 0.6 % over 12 months is about 13 % APR)."""


def product_catalogue() -> tuple[Product, ...]:
    """The book's products: each method at each grade's price; index = method position × 5 + grade."""
    out = []
    for method in METHOD_ORDER:
        for g, grade in enumerate(GRADES):
            terms = (3, 6) if method is Method.INTEREST_ONLY else TERMS
            if method is Method.FLAT_FEE:
                fee = FEE_RATE_BY_GRADE[g]
                out.append(
                    Product(
                        id=f"flat-fee-{grade}",
                        name=f"等本等费 {Decimal(fee) * 100}%/月",
                        method=method,
                        fee_rate=Decimal(fee),
                        terms=terms,
                    )
                )
            else:
                rate = ANNUAL_RATE_BY_GRADE[g]
                out.append(
                    Product(
                        id=f"{method.value}-{grade}",
                        name=f"{method.value} {Decimal(rate) * 100}%",
                        method=method,
                        annual_rate=Decimal(rate),
                        terms=terms,
                    )
                )
    return tuple(out)
