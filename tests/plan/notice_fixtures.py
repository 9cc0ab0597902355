"""A small exit plan, products and positions the notice and pilot tests share (no files, no ledger)."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

from runoff.plan.model import Plan, parse_plan
from runoff.servicing.position import LoanPosition, open_position
from runoff.servicing.product import Product, parse_product
from runoff.servicing.schedule import build_schedule

PLAN: dict[str, Any] = {
    "id": "exit-test",
    "name": "Test exit",
    "lender": {"name": "示例消费金融有限公司", "jurisdictions": ["cn"], "lender_type": "consumer-finance"},
    "region": "CN",
    "timeline": {
        "start": "2026-01-15",
        "stop_new_customers": "start",
        "announcement": "start",
        "individual_notices": "start+7d",
        "stop_new_draws": "announcement+60d",
        "option_window_opens": "individual_notices+7d",
        "option_window_closes": "option_window_opens+90d",
        "final_due_date": "start+40m",
        "repayment_channels_close": "final_due_date+6m",
    },
    "waves": [
        {"id": "wave-1", "segments": ["current"]},
        {"id": "wave-2", "segments": ["arrears"], "shift": "+1m"},
    ],
    "segments": [
        {"id": "current", "label": "current accounts", "when": "bucket == current", "options": ["settle", "extend-6"]},
        {"id": "arrears", "label": "accounts in arrears", "options": ["restructure-24", "settle-discount"]},
    ],
    "options": [
        {"id": "settle", "kind": "early-settlement", "waive_settlement_fee": True},
        {"id": "settle-discount", "kind": "early-settlement", "waive_penalties": True, "discount_rate": "0.10"},
        {"id": "extend-6", "kind": "extension", "extra_months": 6},
        {
            "id": "restructure-24",
            "kind": "restructuring",
            "term_months": 24,
            "annual_rate": "0.12",
            "method": "equal-installment",
            "waive_penalties": True,
            "capitalize_overdue": True,
        },
    ],
    "communications": {
        "channels": ["announcement", "letter", "sms", "in-app", "email"],
        "languages": ["zh-CN", "en"],
        "templates": [
            {
                "id": "closure-letter",
                "notice_type": "closure",
                "channels": ["letter", "email", "in-app", "sms"],
                "path": "notices/closure-letter",
            },
            {
                "id": "offer-letter",
                "notice_type": "offer",
                "channels": ["letter", "email", "in-app", "sms"],
                "path": "notices/offer-letter",
            },
        ],
        "sends": [{"template": "closure-letter", "channel": "letter", "at": "individual_notices"}],
    },
}

LENDERS: dict[str, dict[str, Any]] = {
    "cn": {
        "name": "示例消费金融有限公司",
        "jurisdictions": ["cn"],
        "lender_type": "consumer-finance",
        "collector_types": ["first-party", "agency"],
        "block_on_unconfirmed": True,
    },
    "us": {
        "name": "Example Lending Inc.",
        "jurisdictions": ["us"],
        "lender_type": "bank",
        "collector_types": ["first-party", "agency"],
        "block_on_unconfirmed": True,
    },
    "eu": {"name": "Example Credit DAC", "jurisdictions": ["eu"], "lender_type": "bank", "block_on_unconfirmed": True},
}
REGIONS = {"cn": "CN", "us": "US", "eu": "IE"}

NOTICE_DAY = date(2026, 1, 22)  # individual notices of wave 1


def plan(jurisdiction: str = "cn", **changes: Any) -> Plan:
    data = copy.deepcopy(PLAN)
    data["lender"] = copy.deepcopy(LENDERS[jurisdiction])
    data["region"] = REGIONS[jurisdiction]
    data.update(changes)
    return parse_plan(data, source="test-plan")


def product() -> Product:
    return parse_product(
        {"id": "ei-18", "method": "equal-installment", "annual_rate": "0.18", "terms": [3, 6, 12]}, source="test"
    )


def flat_product() -> Product:
    return parse_product({"id": "flat-06", "method": "flat-fee", "fee_rate": "0.006", "terms": [12]}, source="test")


def current_position(
    start: date = date(2025, 12, 25), principal: str = "3000", prod: Product | None = None
) -> LoanPosition:
    """A 12-month loan drawn shortly before the notice: nothing overdue on the notice day."""
    p = prod or product()
    return open_position("L1", p, build_schedule(p, principal=Decimal(principal), term=12, start_date=start))


def arrears_position() -> LoanPosition:
    """A 12-month loan with its first three installments unpaid by the notice day (M3)."""
    p = product()
    return open_position("L2", p, build_schedule(p, principal=Decimal("3000"), term=12, start_date=date(2025, 10, 10)))
