"""Vectorized equal-installment (等额本息) schedules: runoff against numpy-financial on the same loans.

Prints, for ``--loans`` loans of ``--periods`` monthly periods (principals 500–50,000 yuan, annual rates
0.06–0.24), the best-of-``--repeat`` wall time of runoff's :func:`build_schedules` and of
numpy-financial's ``pmt`` + ``ipmt`` + ``ppmt`` (broadcast over ``per = 1..periods``), the speed-up, how far
numpy-financial's float amounts (rounded to the cent) are from runoff's, and a check that runoff equals
the Decimal engine exactly on a ``--sample`` of the loans. Goal (issue 2): at least 5× faster, to the cent.

    .venv/bin/python benchmarks/bench_schedules.py --loans 100000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import numpy_financial as npf

from runoff.money import to_minor
from runoff.servicing.product import Method, Product, adhoc_product
from runoff.servicing.schedule import build_schedule
from runoff.servicing.vectorized import RATE_SCALE, build_schedules

START = date(2024, 1, 31)


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (time.perf_counter) and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def book(n_loans: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Principals in fen (500–50,000 yuan) and annual rates in 1e-8 units (0.0600–0.2400, 4 decimals)."""
    rng = np.random.default_rng(seed)
    principal_fen = rng.integers(50_000, 5_000_001, n_loans, dtype=np.int64)
    rate_units = rng.integers(600, 2_401, n_loans, dtype=np.int64) * (RATE_SCALE // 10_000)
    return principal_fen, rate_units


def decimal_mismatches(principal_fen: np.ndarray, rate_units: np.ndarray, periods: int, arrays: Any, rows: Any) -> int:
    """Loans of the sample whose runoff schedule differs from the Decimal engine's in any field."""
    products: dict[int, Product] = {}
    bad = 0
    for i in rows.tolist():
        units = int(rate_units[i])
        if units not in products:
            products[units] = adhoc_product(
                method=Method.EQUAL_INSTALLMENT, term=periods, annual_rate=Decimal(units) / RATE_SCALE
            )
        schedule = build_schedule(
            products[units], principal=Decimal(int(principal_fen[i])) / 100, term=periods, start_date=START
        )
        expected = [
            [to_minor(x.principal) for x in schedule.installments],
            [to_minor(x.interest) for x in schedule.installments],
            [to_minor(x.balance_after) for x in schedule.installments],
        ]
        got = [arrays.principal_fen[i].tolist(), arrays.interest_fen[i].tolist(), arrays.balance_after_fen[i].tolist()]
        bad += got != expected
    return bad


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--periods", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--sample", type=int, default=2_000, help="loans checked against the Decimal engine")
    parser.add_argument("--seed", type=int, default=20240131)
    args = parser.parse_args(argv)
    n, periods = args.loans, args.periods

    principal_fen, rate_units = book(n, args.seed)
    pv = principal_fen / 100.0
    rate = rate_units / float(RATE_SCALE * 12)
    per = np.arange(1, periods + 1)[:, None]

    def run_runoff() -> Any:
        return build_schedules(
            Method.EQUAL_INSTALLMENT, principal_fen=principal_fen, term=periods, annual_rate_units=rate_units
        )

    def run_runoff_dated() -> Any:
        return build_schedules(
            Method.EQUAL_INSTALLMENT,
            principal_fen=principal_fen,
            term=periods,
            annual_rate_units=rate_units,
            start_date=START,
        )

    def run_npf_pmt_ipmt() -> Any:
        return npf.pmt(rate, periods, -pv), npf.ipmt(rate, per, periods, -pv)

    def run_npf() -> Any:
        return npf.pmt(rate, periods, -pv), npf.ipmt(rate, per, periods, -pv), npf.ppmt(rate, per, periods, -pv)

    t_runoff, arrays = best_of(args.repeat, run_runoff)
    t_dated, _ = best_of(args.repeat, run_runoff_dated)
    t_npf2, _ = best_of(args.repeat, run_npf_pmt_ipmt)
    t_npf, (pmt, ipmt, ppmt) = best_of(args.repeat, run_npf)

    # npf is float and unrounded (its payment is not rounded to the cent before the split): report the gap.
    npf_payment_fen = np.rint(pmt * 100).astype(np.int64)
    npf_interest_fen = np.rint(ipmt * 100).astype(np.int64).T
    npf_principal_fen = np.rint(ppmt * 100).astype(np.int64).T
    runoff_total = arrays.total_fen
    diff_interest = np.abs(npf_interest_fen - arrays.interest_fen)
    diff_principal = np.abs(npf_principal_fen - arrays.principal_fen)
    diff_payment = np.abs(npf_payment_fen[:, None] - runoff_total)[:, :-1]  # the last installment absorbs rounding
    loans_differing = int((diff_interest.any(axis=1) | diff_principal.any(axis=1)).sum())

    rng = np.random.default_rng(args.seed + 1)
    sample = rng.choice(n, size=min(args.sample, n), replace=False)
    mismatched = decimal_mismatches(principal_fen, rate_units, periods, arrays, sample)
    repaid = bool((arrays.principal_fen.sum(axis=1) == principal_fen).all())

    rows = [
        ("runoff build_schedules (amounts)", f"{t_runoff:8.3f} s", "exact fen, every loan"),
        ("runoff build_schedules (+ due dates)", f"{t_dated:8.3f} s", "datetime64[D], month-end clamp"),
        ("numpy-financial pmt + ipmt", f"{t_npf2:8.3f} s", "float, unrounded (reference ~3.6 s)"),
        ("numpy-financial pmt + ipmt + ppmt", f"{t_npf:8.3f} s", "float, unrounded"),
    ]
    print(f"{n:,} equal-installment loans × {periods} periods, best of {args.repeat}")
    print(f"{'what':40} {'time':>10}  note")
    print("-" * 90)
    for what, t, note in rows:
        print(f"{what:40} {t:>10}  {note}")
    print("-" * 90)
    figures = [
        ("speed-up vs pmt + ipmt + ppmt", f"{t_npf / t_runoff:.1f}×  (goal ≥ 5×)"),
        ("speed-up vs pmt + ipmt", f"{t_npf2 / t_runoff:.1f}×"),
        ("max |npf − runoff| interest", f"{int(diff_interest.max())} fen"),
        ("max |npf − runoff| principal", f"{int(diff_principal.max())} fen"),
        ("max |npf − runoff| payment (k < n)", f"{int(diff_payment.max()) if periods > 1 else 0} fen"),
        ("loans where npf (rounded) ≠ runoff", f"{loans_differing:,} of {n:,}"),
        ("Σ principal == principal lent", "yes, every loan" if repaid else "NO"),
        (f"runoff == Decimal engine ({sample.size:,} sample)", "exact" if mismatched == 0 else f"{mismatched} differ"),
    ]
    for what, value in figures:
        print(f"{what:40} {value}")


if __name__ == "__main__":
    main()
