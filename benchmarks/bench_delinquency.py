"""Full delinquency analytics on N loans × 24 months: runoff (Polars, per-partition sums + merge) against a
straightforward pandas implementation of the same metrics, in the same run.

Metrics: overdue rates by count and balance per bucket and M1+/M2+/M3+/M4+ by month for the book and by
product, term, channel, region and risk grade; vintage curves (coincident and ever M1+/M3+, cumulative
charge-off by MOB); monthly transition counts by segment with the pooled bucket and cycle matrices, roll
and flow rates; concentration (customer HHI and top-N shares of the open and overdue balance, by month).

The book is synthesized straight into a temporary workspace with the schemas of ``docs/book.md`` (a
delinquency Markov chain by risk grade, terms 3/6/12/24, early settlement), partition by partition, so
generating 10M loans stays within memory. Each timed phase runs in its own process so its peak resident
memory (ru_maxrss) is its own.

    .venv/bin/python benchmarks/bench_delinquency.py                       # 10,000,000 loans; pandas at 1,000,000
    .venv/bin/python benchmarks/bench_delinquency.py --loans 200000        # a dev run (both at 200k)
    .venv/bin/python benchmarks/bench_delinquency.py --loans 2000000 --pandas-loans 2000000

Goal (issue 4): under 60 s and 8 GB at 10M loans, at least 10x faster than pandas.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

MONTHS = 24
START = date(2024, 1, 1)
LOANS_PER_PARTITION = 250_000
DIMENSIONS = ("product", "term", "channel", "region", "grade")
OPEN = ["current", "M1", "M2", "M3", "M4+"]


# --- synthetic book ------------------------------------------------------------------------------------------------


def _month_starts() -> np.ndarray:
    return (np.datetime64(START, "M") + np.arange(MONTHS + 2)).astype("datetime64[D]").astype(np.int64)


def synthesize_partition(partition: int, n_loans: int, first_loan: int, seed: int) -> dict[str, pl.DataFrame]:
    """One partition's customers, loans and performance rows (whole customers, about two loans each)."""
    from runoff.portfolio.schemas import CHANNELS, CITY_TIERS, CUSTOMERS, LOANS, PERFORMANCE, RISK_GRADES

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(partition,)))
    n_cust = max(1, n_loans // 2)
    first_cust = first_loan // 2 + 1
    cust_ids = np.arange(first_cust, first_cust + n_cust, dtype=np.int64)
    grade = rng.choice(5, size=n_cust, p=[0.3, 0.3, 0.2, 0.12, 0.08])
    cust_of_loan = np.sort(rng.integers(0, n_cust, size=n_loans))
    loan_ids = np.arange(first_loan + 1, first_loan + 1 + n_loans, dtype=np.int64)
    g = grade[cust_of_loan]
    orig = rng.integers(0, MONTHS, size=n_loans)
    term = np.array([3, 6, 12, 24])[rng.choice(4, size=n_loans, p=[0.3, 0.3, 0.3, 0.1])]
    principal = np.rint(np.exp(rng.normal(np.log(150_000), 0.9, size=n_loans))).astype(np.int64) + 5_000
    day = rng.integers(2, 28, size=n_loans)
    miss = np.array([0.006, 0.012, 0.022, 0.04, 0.07])[g]
    roll = np.array([0.75, 0.9, 1.0, 1.1, 1.2])[g]
    cure_p, roll_p = np.array([0.57, 0.2, 0.1, 0.05, 0.03, 0.02]), np.array([0.3, 0.62, 0.77, 0.87, 0.91, 0.95])
    starts = _month_starts()

    state = np.zeros(n_loans, dtype=np.int64)  # 0 current, 1..6 cycles, 7 charged off
    n_paid = np.zeros(n_loans, dtype=np.int64)
    status = np.zeros(n_loans, dtype=np.int8)  # 0 active, 1 paid-off, 2 early-settled, 3 charged-off
    closed_month = np.full(n_loans, -1)
    installment = -(-principal // term)
    chunks = []
    for t in range(MONTHS):
        live = np.flatnonzero((status == 0) & (orig <= t))
        old = live[orig[live] < t]
        if old.size:
            u, v = rng.random(old.size), rng.random(old.size)
            s = state[old]
            cur = s == 0
            settle = cur & (v < 0.015)
            miss_now = cur & ~settle & (u < miss[old])
            pay_cur = cur & ~settle & ~miss_now
            k = np.clip(s - 1, 0, 5)
            rolls = ~cur & (u < np.minimum(0.99, roll_p[k] * roll[old]))
            cures = ~cur & ~rolls & (u < np.minimum(0.99, roll_p[k] * roll[old]) + cure_p[k])
            stays = ~cur & ~rolls & ~cures
            n_paid[old[pay_cur]] += 1
            n_paid[old[cures]] += s[cures] + 1
            n_paid[old[stays]] += 1
            state[old[miss_now]] = 1
            state[old[rolls]] += 1
            state[old[cures]] = 0
            status[old[settle]] = 2
            n_paid[old[settle]] = term[old[settle]]
            n_paid[old] = np.minimum(n_paid[old], term[old])
            done = old[(status[old] == 0) & (n_paid[old] >= term[old])]
            status[done] = 1
            state[done] = 0
            off = old[state[old] >= 7]
            status[off] = 3
            closed_month[old[status[old] != 0]] = t
        shown = np.flatnonzero((status == 0) & (orig <= t) | (closed_month == t))
        st = status[shown]
        s = np.where(st == 3, 7, np.where(st == 0, state[shown], 0))
        bucket = np.array(["current", "M1", "M2", "M3", "M4+", "M4+", "M4+", "charged-off"])[s]
        bucket = np.where((st == 1) | (st == 2), "closed", bucket)
        last_day = starts[t + 1] - 1
        oldest_due_month = np.maximum(t - s + 1, 0)
        due_day = starts[oldest_due_month] + day[shown] - 1
        dpd = np.where(s > 0, last_day - due_day, 0)
        remaining = np.where(st == 0, term[shown] - n_paid[shown], 0)
        balance = np.where(st == 0, principal[shown] * remaining // term[shown], 0)
        overdue_p = np.where((st == 0) & (s > 0), np.minimum(installment[shown] * s, balance), 0)
        mob = t - orig[shown]
        paid = np.where((st == 0) & (s == 0) & (mob >= 1), installment[shown], 0)
        charged = np.where(
            (st == 3) & (closed_month[shown] == t), principal[shown] * (term[shown] - n_paid[shown]) // term[shown], 0
        )
        chunks.append(
            {
                "loan_id": loan_ids[shown],
                "customer_id": cust_ids[cust_of_loan[shown]],
                "month_end": np.full(shown.size, last_day, dtype=np.int32),
                "mob": mob.astype(np.int16),
                "status": np.array(["active", "paid-off", "early-settled", "charged-off"])[st],
                "bucket": bucket,
                "dpd": dpd.astype(np.int32),
                "principal_balance_fen": balance,
                "overdue_principal_fen": overdue_p,
                "overdue_amount_fen": overdue_p * 11 // 10,
                "due_fen": np.where((mob >= 1) & (mob <= term[shown]), installment[shown], 0),
                "paid_principal_fen": paid,
                "paid_interest_fen": paid // 50,
                "paid_fee_fen": np.zeros(shown.size, dtype=np.int64),
                "paid_penalty_fen": np.zeros(shown.size, dtype=np.int64),
                "penalty_charged_fen": np.zeros(shown.size, dtype=np.int64),
                "charged_off_fen": charged,
                "installments_remaining": remaining.astype(np.int16),
            }
        )
    perf = pl.concat([pl.DataFrame(c) for c in chunks]).with_columns(pl.col("month_end").cast(pl.Date))
    perf = PERFORMANCE.conform(perf.sort("loan_id", "month_end"))
    vintage = np.datetime_as_string(np.datetime64(START, "M") + orig, unit="M")
    orig_day = starts[orig] + day - 1
    loans = pl.DataFrame(
        {
            "loan_id": loan_ids,
            "account_id": cust_ids[cust_of_loan],
            "customer_id": cust_ids[cust_of_loan],
            "product_id": np.array(["equal-installment", "flat-fee"])[(term <= 6).astype(int)]
            + "-"
            + np.array(RISK_GRADES)[g],
            "method": np.array(["equal-installment", "flat-fee"])[(term <= 6).astype(int)],
            "term_months": term.astype(np.int16),
            "annual_rate": np.full(n_loans, 0.18),
            "fee_rate": np.full(n_loans, None, dtype=object),
            "principal_fen": principal,
            "originated_on": orig_day.astype(np.int32),
            "first_due_on": (starts[orig + 1] + day - 1).astype(np.int32),
            "maturity_on": (orig_day + 30 * term).astype(np.int32),
            "vintage": vintage,
            "status": np.array(["active", "paid-off", "early-settled", "charged-off"])[status],
            "closed_on": np.full(n_loans, None, dtype=object),
        }
    ).with_columns(
        pl.col("originated_on", "first_due_on", "maturity_on").cast(pl.Date),
        pl.col("fee_rate").cast(pl.Float64),
        pl.col("closed_on").cast(pl.Date),
    )
    customers = pl.DataFrame(
        {
            "customer_id": cust_ids,
            "age": rng.integers(18, 65, size=n_cust).astype(np.int16),
            "city_tier": np.array(CITY_TIERS)[rng.integers(0, 5, size=n_cust)],
            "income_band": np.full(n_cust, "5k-8k"),
            "monthly_income_fen": rng.integers(300_000, 2_000_000, size=n_cust),
            "channel": np.array(CHANNELS)[rng.integers(0, 5, size=n_cust)],
            "onboarded_on": np.full(n_cust, np.datetime64("2022-01-01")),
            "tenure_months": rng.integers(0, 96, size=n_cust).astype(np.int16),
            "risk_grade": np.array(RISK_GRADES)[grade],
        }
    ).with_columns(pl.col("onboarded_on").cast(pl.Date))
    return {"performance": perf, "loans": LOANS.conform(loans), "customers": CUSTOMERS.conform(customers)}


def synthesize_book(root: Path, n_loans: int, seed: int) -> dict[str, int]:
    from runoff.store.workspace import Workspace

    workspace = Workspace.init(root)
    rows = 0
    for p, first in enumerate(range(0, n_loans, LOANS_PER_PARTITION)):
        size = min(LOANS_PER_PARTITION, n_loans - first)
        first_even = first + (first % 2)  # keeps customer numbers of partitions apart
        frames = synthesize_partition(p, size, first_even * 2, seed)
        for name, frame in frames.items():
            workspace.write_partition(name, p, frame)
        rows += frames["performance"].height
    return {"loans": n_loans, "performance_rows": rows, "partitions": len(workspace.partitions("performance"))}


# --- the two implementations -----------------------------------------------------------------------------------------


def run_runoff(root: Path) -> dict[str, object]:
    """runoff's path: one pass over the partitions (sums), then every ratio, matrix and curve from the sums."""
    from runoff.app.assess import book_analytics
    from runoff.risk.roll_rates import transition_matrix
    from runoff.store.workspace import Workspace

    analytics = book_analytics(Workspace.open(root), dimensions=DIMENSIONS)
    rates = analytics.overdue_rates()
    curves = analytics.vintage_curves()
    counts = analytics.transition_counts
    assert counts is not None
    matrices = {s: transition_matrix(counts, states=s) for s in ("bucket", "cycle")}
    rolls = analytics.roll_rates()
    flows = analytics.flow_rates()
    conc = analytics.concentration()
    seg = analytics.segment_concentration()
    total = rates.filter(pl.col("dimension") == "total").sort("month_end")
    return {
        "m1plus_loans": total.get_column("m1plus_loans").to_list(),
        "m4plus_balance_fen": total.get_column("m4plus_balance_fen").to_list(),
        "transitions": int(matrices["cycle"].counts.sum()),
        "bucket_current_to_m1": matrices["bucket"].probability("current", "M1"),
        "vintage_rows": curves.height,
        "ever_m3plus_loans": int(
            curves.group_by("vintage").agg(pl.col("ever_m3plus_loans").max()).get_column("ever_m3plus_loans").sum()
        ),
        "roll_rows": rolls.height,
        "flow_rows": flows.height,
        "hhi_last": float(conc.get_column("hhi")[-1]),
        "segment_dims": seg.height,
    }


def run_pandas(root: Path) -> dict[str, object]:
    """The same metrics the way an analyst would write them in pandas: load everything, merge, groupby."""
    import pandas as pd

    perf = pd.read_parquet(root / "data" / "performance")
    perf["month_end"] = pd.to_datetime(perf["month_end"])
    loans = pd.read_parquet(
        root / "data" / "loans", columns=["loan_id", "product_id", "term_months", "vintage", "principal_fen"]
    )
    customers = pd.read_parquet(
        root / "data" / "customers", columns=["customer_id", "channel", "city_tier", "risk_grade"]
    )
    df = perf.merge(loans, on="loan_id", how="left").merge(customers, on="customer_id", how="left")
    df["product"], df["term"], df["region"], df["grade"] = (
        df["product_id"],
        df["term_months"].astype(str),
        df["city_tier"],
        df["risk_grade"],
    )
    is_open = df["bucket"].isin(OPEN)
    thresholds = {
        "m1plus": ["M1", "M2", "M3", "M4+"],
        "m2plus": ["M2", "M3", "M4+"],
        "m3plus": ["M3", "M4+"],
        "m4plus": ["M4+"],
    }
    df["open"] = is_open.astype(int)
    df["open_bal"] = df["principal_balance_fen"].where(is_open, 0)
    for name, members in thresholds.items():
        m = df["bucket"].isin(members)
        df[f"{name}_n"] = m.astype(int)
        df[f"{name}_bal"] = df["principal_balance_fen"].where(m, 0)
    value_cols = ["open", "open_bal", *[f"{n}_{k}" for n in thresholds for k in ("n", "bal")], "charged_off_fen"]
    results = {}
    for dim in (None, *DIMENSIONS):
        keys = ["month_end"] if dim is None else ["month_end", dim]
        g = df.groupby(keys)[value_cols].sum()
        for name in thresholds:
            g[f"{name}_count_rate"] = g[f"{name}_n"] / g["open"].replace(0, np.nan)
            g[f"{name}_balance_rate"] = g[f"{name}_bal"] / g["open_bal"].replace(0, np.nan)
        by_bucket = df.groupby([*keys, "bucket"])["principal_balance_fen"].agg(["count", "sum"]).unstack("bucket")
        results[dim or "total"] = (g, by_bucket)

    # vintage curves
    orig = loans.groupby("vintage").agg(originated_loans=("loan_id", "size"), originated_fen=("principal_fen", "sum"))
    v = df.groupby(["vintage", "mob"])[
        ["open", "open_bal", "m1plus_n", "m1plus_bal", "m3plus_n", "m3plus_bal", "charged_off_fen"]
    ].sum()
    v = v.join(orig, on="vintage")
    v["cum_charged_off_fen"] = v.groupby(level="vintage")["charged_off_fen"].cumsum()
    firsts = {}
    for name in ("m1plus", "m3plus"):
        bad = df[df["bucket"].isin([*thresholds[name], "charged-off"])]
        first = bad.groupby("loan_id").agg(vintage=("vintage", "first"), mob=("mob", "min"))
        firsts[name] = first.groupby(["vintage", "mob"]).size().groupby(level="vintage").cumsum()
    v["m1plus_rate"] = v["m1plus_bal"] / v["originated_fen"]
    v["m3plus_rate"] = v["m3plus_bal"] / v["originated_fen"]
    v["cum_charge_off_rate"] = v["cum_charged_off_fen"] / v["originated_fen"]

    # transitions (cycle states), by segment
    df = df.sort_values(["loan_id", "month_end"])
    oldest = df["month_end"] - pd.to_timedelta(df["dpd"], unit="D")
    cycles = (df["month_end"].dt.year * 12 + df["month_end"].dt.month) - (oldest.dt.year * 12 + oldest.dt.month) + 1
    state = np.select(
        [df["status"] == "paid-off", df["status"] == "early-settled", df["status"] == "charged-off",
         df["bucket"] == "current", df["bucket"] == "M1", df["bucket"] == "M2", df["bucket"] == "M3"],
        ["paid-off", "prepaid", "charged-off", "current", "M1", "M2", "M3"],
        default="M" + cycles.clip(4, 7).astype(str),
    )  # fmt: skip
    df["state"] = pd.Series(state, index=df.index).replace("M7", "M7+")
    nxt = df.groupby("loan_id")[["state", "month_end"]].shift(-1)
    expected_next = df["month_end"] + pd.offsets.MonthEnd(1)
    df["to_state"] = np.where(nxt["month_end"] == expected_next, nxt["state"], "unobserved")
    as_of = df["month_end"].max()
    fr = df[(df["state"].isin(["current", "M1", "M2", "M3", "M4", "M5", "M6", "M7+"])) & (df["month_end"] < as_of)]
    trans = {}
    for dim in (None, *DIMENSIONS):
        keys = ["month_end", "state", "to_state"] if dim is None else ["month_end", dim, "state", "to_state"]
        trans[dim or "total"] = fr.groupby(keys)["principal_balance_fen"].agg(["count", "sum"])
    total = trans["total"].groupby(level=["state", "to_state"]).sum()
    bucket_of = {"M4": "M4+", "M5": "M4+", "M6": "M4+", "M7+": "M4+"}
    tb = total.rename(index=bucket_of).groupby(level=[0, 1]).sum()
    cur = tb.loc["current"]
    observed = cur.drop(index="unobserved", errors="ignore")["count"]
    p_current_m1 = float(observed.get("M1", 0) / observed.sum())

    # concentration
    cust = df[is_open.loc[df.index]].groupby(["month_end", "customer_id"])["principal_balance_fen"].sum()
    by_month = cust.groupby(level="month_end")
    hhi = by_month.apply(lambda s: float(((s / s.sum()) ** 2).sum()))
    top10 = by_month.apply(lambda s: float(s.nlargest(10).sum() / s.sum()))

    totals = results["total"][0].sort_index()
    return {
        "m1plus_loans": [int(x) for x in totals["m1plus_n"]],
        "m4plus_balance_fen": [int(x) for x in totals["m4plus_bal"]],
        "transitions": int((fr["to_state"] != "unobserved").sum()),
        "bucket_current_to_m1": p_current_m1,
        "ever_m3plus_loans": int(firsts["m3plus"].groupby(level="vintage").max().sum()),
        "hhi_last": float(hhi.iloc[-1]),
        "top10_last": float(top10.iloc[-1]),
    }


# --- driver ------------------------------------------------------------------------------------------------------------


def _phase(name: str, root: Path) -> dict[str, object]:
    """Run one implementation in a fresh process; its wall time and peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--workspace", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(name: str, root: Path) -> None:
    if name == "runoff":  # imports are not part of the figure (the same for both)
        import runoff.app.assess  # noqa: F401
    else:
        import pandas  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    figures = run_runoff(root) if name == "runoff" else run_pandas(root)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = after.ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_mb, "figures": figures}, default=str))


def _agree(a: dict[str, object], b: dict[str, object]) -> bool:
    fa, fb = a.get("figures"), b.get("figures")
    if not isinstance(fa, dict) or not isinstance(fb, dict):
        return False
    same = all(fa[k] == fb[k] for k in ("m1plus_loans", "m4plus_balance_fen", "transitions", "ever_m3plus_loans"))
    close = (
        abs(float(fa["bucket_current_to_m1"]) - float(fb["bucket_current_to_m1"])) < 1e-12
        and abs(float(fa["hhi_last"]) - float(fb["hhi_last"])) < 1e-9
    )
    return same and close


def _report(
    label: str, n: int, book: dict[str, int], ours: dict[str, object], theirs: dict[str, object] | None
) -> None:
    print(f"\n== {label}: {n:,} loans, {book['performance_rows']:,} month-end rows, {book['partitions']} partitions")
    if "error" in ours:
        print(f"runoff: failed: {ours['error']}")
        return
    load = os.getloadavg()[0]
    print(
        f"(load average {load:.1f} on {os.cpu_count()} cores: wall times stretch on a busy machine; CPU seconds do not)"
    )
    print(
        f"runoff (Polars, per-partition sums + merge): {ours['seconds']:8.2f} s  cpu {ours['cpu_seconds']:8.2f} s  "
        f"peak {ours['peak_mb']:8.0f} MB"
    )
    if theirs is None:
        return
    if "error" in theirs:
        print(f"pandas: failed: {theirs['error']}")
        return
    print(
        f"pandas (load all, merge, groupby):           {theirs['seconds']:8.2f} s  cpu {theirs['cpu_seconds']:8.2f} s  "
        f"peak {theirs['peak_mb']:8.0f} MB"
    )
    speed = float(theirs["seconds"]) / float(ours["seconds"])
    cpu_speed = float(theirs["cpu_seconds"]) / float(ours["cpu_seconds"])
    same = "yes" if _agree(ours, theirs) else "NO"
    print(f"speed-up: {speed:.1f}x wall, {cpu_speed:.1f}x CPU; same figures: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=10_000_000)
    parser.add_argument(
        "--pandas-loans", type=int, default=None, help="size of the pandas comparison (default: min(loans, 1M))"
    )
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--phase", choices=["runoff", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _child(args.phase, args.workspace)
        return
    pandas_n = min(args.loans, 1_000_000) if args.pandas_loans is None else args.pandas_loans
    with tempfile.TemporaryDirectory(prefix="runoff-bench-") as tmp:
        sizes = sorted({n for n in (pandas_n, args.loans) if n > 0})
        for n in sizes:
            root = Path(tmp) / f"book-{n}"
            t0 = time.perf_counter()
            book = synthesize_book(root, n, args.seed)
            print(
                f"synthesized {n:,} loans ({book['performance_rows']:,} rows) in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            ours = _phase("runoff", root)
            theirs = _phase("pandas", root) if n == pandas_n else None
            _report("same N" if theirs is not None else "full N", n, book, ours, theirs)
    print("\ngoal: under 60 s and 8,192 MB at 10,000,000 loans; at least 10x faster than pandas at the same N")


if __name__ == "__main__":
    main()
