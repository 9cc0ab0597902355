"""Compliance check of a plan with its offers: seconds for N accounts (all options of their segments).

    .venv/bin/python benchmarks/bench_compliance.py                       # 1,000,000 accounts
    .venv/bin/python benchmarks/bench_compliance.py --accounts 100000     # a quick run while developing

Reference: issue 5's goal, checking a plan with its offers for 1,000,000 accounts in under 30 s. Each
account gets three offers (early settlement, extension, restructuring) priced as float APRs, as the
vectorized pricer writes them; the check runs every rate cap, early-settlement compensation cap and
settlement-interest rule that binds a consumer-finance company operating in CN, US and EU, then the plan
check. Building the synthetic offers table is not timed.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from decimal import Decimal

import numpy as np
import polars as pl

from runoff.compliance.engine import check_offers_frame, check_plan_facts
from runoff.compliance.facts import PlanFacts, PlannedChange, SegmentFacts
from runoff.compliance.profile import LenderProfile
from runoff.compliance.selection import RuleBook

OPTIONS = ("early-settlement", "extension", "restructuring")
REGIONS = ("CN", "CN", "CN", "CN", "US-TX", "US-MA", "IE", "FR")


def offers_table(accounts: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = accounts * len(OPTIONS)
    nominal = rng.uniform(0.05, 0.30, n)
    return pl.DataFrame(
        {
            "offer_id": np.arange(n).astype(str),
            "customer_id": np.repeat(np.arange(accounts), len(OPTIONS)).astype(str),
            "option": np.tile(np.array(OPTIONS), accounts),
            "offered_on": np.full(n, np.datetime64("2026-05-04")),
            "region": rng.choice(np.array(REGIONS), n),
            "apr_nominal": nominal,
            "apr_effective": (1 + nominal / 12) ** 12 - 1,
            "formation_date": np.datetime64("2024-06-01") + rng.integers(0, 600, n).astype("timedelta64[D]"),
            "settlement_fee": rng.integers(0, 120, n).astype(float),
            "amount_repaid_early": rng.uniform(500, 20000, n).round(2),
            "remaining_months": rng.integers(1, 36, n),
            "interest_charged": rng.uniform(0, 50, n).round(2),
            "interest_accrued_to_settlement": rng.uniform(0, 50, n).round(2),
            "covered_borrower": rng.random(n) < 0.01,
        }
    ).with_columns(pl.col("offered_on").cast(pl.Date), pl.col("formation_date").cast(pl.Date))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    profile = LenderProfile(
        jurisdictions={"cn", "us", "eu"}, lender_type="consumer-finance", collector_types={"first-party", "agency"}
    )
    offers = offers_table(args.accounts, args.seed)
    plan = PlanFacts(
        plan_id="phased",
        regions=frozenset(REGIONS),
        changes=(PlannedChange(change="stop-draws", effective_on=date(2026, 7, 1), notified_on=date(2026, 5, 4)),),
        segments=(SegmentFacts(name="all", accounts=args.accounts, balance=Decimal(args.accounts) * 3000),),
        accounts_total=args.accounts,
    )

    start = time.perf_counter()
    book = RuleBook(profile)
    findings = check_offers_frame(offers, profile, book=book)
    offers_s = time.perf_counter() - start
    plan_findings = check_plan_facts(plan, profile, as_of=date(2026, 5, 4), book=book)
    total_s = time.perf_counter() - start

    print(f"accounts            {args.accounts:,}")
    print(f"offers checked      {offers.height:,}")
    print(f"offer findings      {findings.height:,}")
    print(f"plan findings       {len(plan_findings):,}")
    print(f"offers check        {offers_s:.2f} s")
    print(f"plan + offers       {total_s:.2f} s   (goal: under 30 s for 1,000,000 accounts)")
    print(findings.group_by("rule_id", "severity").len().sort("rule_id"))


if __name__ == "__main__":
    main()
