"""Varied servicing positions for the offer tests: products the generated book does not have, payments part
made and dated, overdue installments, credit balances, penalty caps and business-day rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from runoff.money import CENT
from runoff.servicing.position import DatedPayment, LoanPosition, open_position
from runoff.servicing.product import Component, Product, parse_product
from runoff.servicing.schedule import build_schedule

PRODUCTS: tuple[Product, ...] = tuple(
    parse_product(data, source="test")
    for data in (
        {"id": "ei-18", "method": "equal-installment", "annual_rate": "0.18", "terms": [3, 6, 12, 24]},
        {
            "id": "ei-even-yuan",
            "method": "等额本息",
            "annual_rate": "0.1525",
            "terms": [6, 12],
            "rounding": {"mode": "half-even", "multiple_of": "1.00"},
            "early_settlement": {"fee_rate_of_remaining_principal": "0.02", "flat_fee": "5.00"},
        },
        {
            "id": "flat-06",
            "method": "flat-fee",
            "fee_rate": "0.006",
            "terms": [3, 6, 12],
            "early_settlement": {"interest": "current-period", "remaining_flat_fees_waived": False},
            "penalty": {"daily_rate": "0.0005", "cap_rate_of_principal": "0.02"},
        },
        {
            "id": "ep-12-cap",
            "method": "equal-principal",
            "annual_rate": "0.12",
            "terms": [6, 12],
            "grace_kind": "capitalize",
            "penalty": {"base": "overdue-amount", "grace_days": 3, "daily_rate": "0.0007"},
        },
        {
            "id": "io-24-bdr",
            "method": "interest-only",
            "annual_rate": "0.24",
            "terms": [3, 6],
            "business_day_rule": "following",
            "early_settlement": {"interest": "none"},
        },
    )
)


def random_positions(seed: int, n: int, *, as_of: date) -> list[LoanPosition]:
    """``n`` loans drawn 1 to 20 months before ``as_of``, each with its first installments paid (some late,
    some part paid) and some left unpaid past due."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        product = PRODUCTS[k % len(PRODUCTS)]
        term = int(rng.choice(product.terms))
        start = as_of - timedelta(days=int(rng.integers(20, 600)))
        principal = (Decimal(int(rng.integers(20_000, 2_000_000))) / 100).quantize(CENT)
        schedule = build_schedule(product, principal=principal, term=term, start_date=start)
        position = open_position(f"T{seed}-{k}", product, schedule)
        due = [i for i in position.installments if i.due_date <= as_of]
        paid_count = int(rng.integers(0, len(due) + 1))
        installments = list(position.installments)
        for j, inst in enumerate(installments):
            if j < paid_count:
                late = int(rng.integers(0, 25)) if rng.random() < 0.3 else 0
                on = inst.due_date + timedelta(days=late)
                installments[j] = replace(
                    inst,
                    principal_paid=inst.principal_due,
                    interest_paid=inst.interest_due,
                    fee_paid=inst.fee_due,
                    dated_payments=(
                        DatedPayment(on, Component.PRINCIPAL, inst.principal_due),
                        DatedPayment(on, Component.INTEREST, inst.interest_due),
                        DatedPayment(on, Component.FEE, inst.fee_due),
                    ),
                )
            elif j == paid_count and inst.due_date <= as_of and rng.random() < 0.4:
                part = (inst.principal_due * Decimal("0.37")).quantize(CENT)
                on = inst.due_date + timedelta(days=int(rng.integers(1, 10)))
                on = min(on, as_of)
                installments[j] = replace(
                    inst,
                    principal_paid=part,
                    interest_paid=inst.interest_due,
                    fee_paid=inst.fee_due,
                    dated_payments=(
                        DatedPayment(on, Component.PRINCIPAL, part),
                        DatedPayment(on, Component.INTEREST, inst.interest_due),
                        DatedPayment(on, Component.FEE, inst.fee_due),
                    ),
                )
        credit = (Decimal(int(rng.integers(0, 3000))) / 100).quantize(CENT) if rng.random() < 0.2 else Decimal("0.00")
        out.append(replace(position, installments=tuple(installments), credit_balance=credit))
    return out
