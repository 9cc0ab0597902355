"""Offers for a whole book (批量报价) and the plan check over them: pricing and checking 1,000,000 accounts.

Builds a book of ``--accounts`` accounts by tiling the open loans of a generated book partition (the
generator's mix of products, terms, arrears and incomes; ids renumbered per copy), splits it into partitions
of ``--partition-accounts`` accounts as the workspace would, and times, per partition and in total:

* pricing: account features, segments, the value of the original schedules and every option of every
  loan's segment (:func:`runoff.plan.offers.plan_over_loans`), the vectorized path;
* checking: the compliance engine's vectorized offer check on every offer, the worst offer of each segment
  and option row by row, and the plan facts (:mod:`runoff.plan.checks`).

It also re-prices ``--sample`` offers with the Decimal quotes and counts those that differ by a cent.
Goals (issue 5): pricing 1,000,000 accounts under 60 s, checking the plan with its offers under 30 s.
Wall and CPU seconds are both printed: on a shared machine the wall time includes waiting for a CPU, and
the CPU time (all threads; Polars uses every core) is what a quiet machine approaches.

    .venv/bin/python benchmarks/bench_offers.py --accounts 50000        # a quick run
    .venv/bin/python benchmarks/bench_offers.py                         # 1,000,000 accounts
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
import psutil
import yaml

from runoff.compliance.selection import RuleBook
from runoff.plan.checks import check_offers_part, check_plan, merge_figures, merge_offer_checks
from runoff.plan.loan_state import loan_states, position_of
from runoff.plan.model import Plan, parse_plan
from runoff.plan.offers import plan_over_loans
from runoff.plan.quoting import quote_columns, quote_option
from runoff.plan.segments import observed_pd_by_bucket, observed_pd_counts
from runoff.portfolio.catalogue import product_catalogue
from runoff.portfolio.generator import BookConfig, generate_partition
from runoff.portfolio.positions import open_positions

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PLAN = ROOT / "examples" / "plans" / "phased-three-wave.yaml"
ID_STRIDE = 10**9


def base_book(customers: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, float], object]:
    """Open loans (states' inputs), their installment rows and the customers of one generated partition."""
    book = generate_partition(BookConfig(customers=customers, months=24, seed=seed), 0)
    as_of = book["performance"].get_column("month_end").max()
    loans, rows = open_positions(
        loans=book["loans"].lazy(),
        installments=book["installments"].lazy(),
        payments=book["payments"].lazy(),
        performance=book["performance"].lazy(),
        as_of=as_of,
    )
    pd = observed_pd_by_bucket([observed_pd_counts(book["performance"].lazy())])
    assert pd is not None
    return loans.rename({"originated_on": "start_date"}), rows, book["customers"], pd, as_of


def tile(loans: pl.DataFrame, rows: pl.DataFrame, customers: pl.DataFrame, copies: range):
    """``copies`` of the base book with every id shifted by ``copy × ID_STRIDE`` (customer, account, loan)."""
    shifted = []
    for frame, ids in (
        (loans, ("loan_id", "account_id", "customer_id")),
        (rows, ("loan_id",)),
        (customers, ("customer_id",)),
    ):
        parts = [frame.with_columns(pl.col(c) + k * ID_STRIDE for c in ids) for k in copies]
        shifted.append(pl.concat(parts))
    return shifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the book")
    parser.add_argument("--partition-accounts", type=int, default=100_000, help="accounts a partition")
    parser.add_argument("--base-customers", type=int, default=12_000, help="customers of the generated base book")
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN)
    parser.add_argument("--sample", type=int, default=300, help="offers re-priced with the Decimal quotes")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    plan: Plan = parse_plan(yaml.safe_load(args.plan.read_text(encoding="utf-8")), source=str(args.plan))
    products = product_catalogue()
    t0 = time.perf_counter()
    loans, rows, customers, pd, as_of = base_book(args.base_customers, args.seed)
    base_accounts = loans.get_column("account_id").n_unique()
    print(f"base book: {args.base_customers:,} customers, {base_accounts:,} accounts with open loans, "
          f"{loans.height:,} open loans as of {as_of} ({time.perf_counter() - t0:.1f} s to generate)")  # fmt: skip

    copies_needed = -(-args.accounts // base_accounts)
    per_partition = max(1, args.partition_accounts // base_accounts)
    rules = RuleBook(plan.lender)
    figures, checks = [], []
    price_s = check_s = price_cpu = check_cpu = 0.0
    accounts = loan_count = offers = 0
    sample = None
    for start in range(0, copies_needed, per_partition):
        part_loans, part_rows, part_customers = tile(
            loans, rows, customers, range(start, min(start + per_partition, copies_needed))
        )
        t, c = time.perf_counter(), time.process_time()
        states = loan_states(part_loans, part_rows, products, as_of=as_of)
        figure, book = plan_over_loans(plan, states, part_rows, part_customers, products, as_of=as_of, pd_by_bucket=pd)
        price_s += time.perf_counter() - t
        price_cpu += time.process_time() - c
        assert book is not None
        t, c = time.perf_counter(), time.process_time()
        checks.append(check_offers_part(book.offers, book.skipped, plan, book=rules))
        check_s += time.perf_counter() - t
        check_cpu += time.process_time() - c
        figures.append(figure)
        accounts += states.get_column("account_id").n_unique()
        loan_count += states.height
        offers += book.offers.height
        if sample is None:
            sample = (part_loans, part_rows, book.offers.sample(min(args.sample, book.offers.height), seed=1))
        print(f"  partition {len(figures)}: {accounts:,} accounts, {offers:,} offers "
              f"(pricing {price_s:.1f} s, checking {check_s:.1f} s)", flush=True)  # fmt: skip
    t, c = time.perf_counter(), time.process_time()
    merged = merge_offer_checks(checks)
    verdict = check_plan(plan, merge_figures(figures), as_of=as_of, offers=merged, book=rules)
    check_s += time.perf_counter() - t
    check_cpu += time.process_time() - c

    mismatches = 0
    if sample is not None:
        part_loans, part_rows, picked = sample
        by_product = {p.id: p for p in products}
        grouped = {k[0]: g.to_dicts() for k, g in part_rows.filter(
            pl.col("loan_id").cast(pl.String).is_in(picked["loan_id"].to_list())).group_by("loan_id")}  # fmt: skip
        loan_rows = {str(r["loan_id"]): r for r in part_loans.to_dicts()}
        for row in picked.to_dicts():
            loan = loan_rows[row["loan_id"]]
            position = position_of(loan, grouped[loan["loan_id"]], by_product[loan["product_id"]])
            option = plan.option(row["option_id"])
            expected = quote_columns(quote_option(position, option, as_of=as_of), position, option)
            if any(
                row[k] != expected[k] for k in ("total_cost_fen", "pay_now_fen", "principal_fen", "installment_fen")
            ):
                mismatches += 1

    rss = psutil.Process().memory_info().rss / 2**30
    print()
    print(f"accounts {accounts:,}   open loans {loan_count:,}   offers {offers:,} ({len(figures)} partitions)")
    print(
        f"pricing  {price_s:7.1f} s wall ({price_cpu:.1f} s CPU)   {offers / price_s:,.0f} offers/s   "
        f"goal < 60 s: {'met' if price_s < 60 else 'NOT met'}"
    )
    print(f"checking {check_s:7.1f} s wall ({check_cpu:.1f} s CPU)   {merged.findings.height:,} offer findings, {len(verdict.findings)} reported "
          f"({verdict.counts()})   goal < 30 s: {'met' if check_s < 30 else 'NOT met'}")  # fmt: skip
    print(f"Decimal quotes re-priced: {args.sample}, differing by a cent or more: {mismatches}")
    print(f"peak-ish RSS now: {rss:.1f} GiB; load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} CPUs "
          "(wall times on a busy machine include waiting for a CPU)")  # fmt: skip


if __name__ == "__main__":
    main()
