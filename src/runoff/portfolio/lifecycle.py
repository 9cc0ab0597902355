"""The month-by-month life of one block of customers and their loans (vectorized over the block's loans).

A block is :data:`BLOCK_CUSTOMERS` consecutive customers with their own random stream; each book month
it applies the behaviour chain to the loans already drawn (payments, cures, rolls, settlement,
prepayment, write-off, 罚息), draws the month's new loans within the free credit limits, schedules them
on the vectorized engine, and takes the month-end snapshot. The tables it returns follow
:mod:`runoff.portfolio.schemas`.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl

from runoff.calendar import add_months
from runoff.portfolio import schemas
from runoff.portfolio.behaviour import CHARGED_OFF, GRADES
from runoff.portfolio.catalogue import MAX_TERM, METHOD_ORDER, METHOD_SHARES, SEASONALITY, TERMS, product_catalogue
from runoff.servicing.product import Method
from runoff.servicing.vectorized import schedules_for_products

if TYPE_CHECKING:
    from runoff.portfolio.generator import BookConfig, BookTruth

BLOCK_CUSTOMERS = 4096
"""Customers per random-stream block; part of the book's definition (changing it changes the book)."""

_ACTIVE, _PAID_OFF, _SETTLED, _CHARGED_OFF = 0, 1, 2, 3
_INTEREST_ONLY_POSITION = METHOD_ORDER.index(Method.INTEREST_ONLY)
_KIND_SCHEDULED, _KIND_LATE, _KIND_PARTIAL, _KIND_PREPAYMENT, _KIND_SETTLEMENT = range(5)
_STATE_BUCKET = np.array(["current", "M1", "M2", "M3", "M4+", "M4+", "M4+", "charged-off"])
_STATUS = np.array(schemas.LOAN_STATUSES)
_KINDS = np.array(schemas.PAYMENT_KINDS)

IntArray = npt.NDArray[np.int64]


def month_starts(start: date, count: int) -> IntArray:
    """Days since 1970-01-01 of the first day of ``count`` months from ``start``."""
    months = np.datetime64(start, "M") + np.arange(count)
    starts: IntArray = months.astype("datetime64[D]").astype(np.int64)
    return starts


def day_to_date(days: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + days)


def _dates(days: npt.ArrayLike) -> pl.Series:
    return pl.Series(np.asarray(days, dtype=np.int32)).cast(pl.Date)


class _Block:
    """One block of customers simulated month by month (vectorized over its loans)."""

    def __init__(self, config: BookConfig, truth: BookTruth, block: int) -> None:
        self.config, self.truth = config, truth
        self.behaviour = truth.behaviour
        root = np.random.SeedSequence(config.seed)
        self.rng = np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(1, block)))
        first = block * BLOCK_CUSTOMERS
        self.n_cust = min(BLOCK_CUSTOMERS, config.customers - first)
        self.customer_ids = np.arange(first + 1, first + 1 + self.n_cust, dtype=np.int64)
        # Book month t runs from month_start[t + 1] to month_start[t + 2] - 1; index 0 is the month before.
        self.month_start = month_starts(add_months(config.start_month, -1), config.months + MAX_TERM + 4)
        self.orig: IntArray = np.zeros(0, dtype=np.int64)
        self.day: IntArray = np.zeros(0, dtype=np.int64)
        self.catalogue = product_catalogue()

    def due_day(self, loans: IntArray, k: IntArray) -> IntArray:
        """Due date of installment index ``k`` (0-based) of ``loans``: its drawing day, k + 1 months on."""
        due: IntArray = self.month_start[self.orig[loans] + k + 2] + self.day[loans] - 1
        return due


def simulate_block(config: BookConfig, truth: BookTruth, block: int) -> dict[str, pl.DataFrame]:
    b = _Block(config, truth, block)
    rng, beh = b.rng, b.behaviour
    n, months = b.n_cust, config.months
    grades = beh.grades

    # --- customers ---------------------------------------------------------------------------
    grade = rng.choice(len(grades), size=n, p=beh.grade_shares).astype(np.int8)
    age = np.clip(np.rint(rng.normal(31.0, 8.0, size=n)), 18, 65).astype(np.int16)
    tier = rng.choice(5, size=n, p=[0.15, 0.20, 0.25, 0.20, 0.20])
    tier_income = np.array([1.5, 1.3, 1.0, 0.85, 0.7])
    grade_income = np.array([1.25, 1.1, 1.0, 0.9, 0.8])
    income_yuan = 6000.0 * tier_income[tier] * grade_income[grade] * np.exp(rng.normal(0.0, 0.5, size=n))
    income_fen = np.rint(np.clip(income_yuan, 1500, 200_000) * 100).astype(np.int64)
    band = np.searchsorted(np.array([300_000, 500_000, 800_000, 1_500_000]), income_fen, side="right")
    channel = rng.choice(5, size=n, p=[0.45, 0.25, 0.10, 0.12, 0.08])
    tenure = np.minimum(np.floor(rng.gamma(2.0, 10.0, size=n)), 96).astype(np.int16)
    onboard_day = rng.integers(0, 28, size=n)
    onboard_months = np.datetime64(config.start_month, "M") - tenure.astype("timedelta64[M]")
    onboarded = onboard_months.astype("datetime64[D]").astype(np.int64) + onboard_day
    limit_factor = np.array([1.3, 1.1, 1.0, 0.8, 0.6])[grade] * rng.uniform(0.8, 2.5, size=n)
    limit_fen = (np.clip(np.rint(income_fen * limit_factor / 10_000), 5, 500) * 10_000).astype(np.int64)
    intensity = config.draws_per_month * rng.gamma(2.0, 0.5, size=n) * np.array([0.9, 1.0, 1.05, 1.1, 1.15])[grade]
    season = np.array([SEASONALITY[(config.start_month.month - 1 + t) % 12] for t in range(months)])
    draws = rng.poisson(intensity[:, None] * season[None, :])  # customers × months
    capacity = int(draws.sum())

    # --- loan state (capacity slots, filled as loans are drawn) --------------------------------
    cust = np.zeros(capacity, dtype=np.int64)
    orig = np.zeros(capacity, dtype=np.int64)
    day = np.zeros(capacity, dtype=np.int64)
    term = np.zeros(capacity, dtype=np.int64)
    n_eff = np.zeros(capacity, dtype=np.int64)
    n_paid = np.zeros(capacity, dtype=np.int64)
    status = np.zeros(capacity, dtype=np.int8)
    closed_month = np.full(capacity, -1, dtype=np.int64)
    closed_day = np.zeros(capacity, dtype=np.int64)
    penalty = np.zeros(capacity, dtype=np.int64)
    rem_p = np.zeros((capacity, MAX_TERM), dtype=np.int64)
    rem_i = np.zeros((capacity, MAX_TERM), dtype=np.int64)
    rem_f = np.zeros((capacity, MAX_TERM), dtype=np.int64)
    sched_total = np.zeros((capacity, MAX_TERM), dtype=np.int64)
    principal = np.zeros(capacity, dtype=np.int64)
    product = np.zeros(capacity, dtype=np.int64)
    loan_id = np.zeros(capacity, dtype=np.int64)
    b.orig, b.day = orig, day
    loans_of_customer = np.zeros(n, dtype=np.int64)
    n_loans = 0
    cols = np.arange(MAX_TERM)

    pay_rows: list[tuple[IntArray, ...]] = []
    perf_rows: list[dict[str, Any]] = []
    installment_frames: list[pl.DataFrame] = []
    late_by_grade = np.array([g.late_in_month for g in grades])
    settle_by_grade = np.array([g.early_settlement for g in grades])
    prepay_by_grade = np.array([g.prepayment for g in grades])
    partial_by_grade = np.array([g.partial_payment for g in grades])
    cum_matrices = np.cumsum(truth.matrices, axis=3)
    catalogue = b.catalogue
    penalty_rate_micro = round(beh.penalty_daily_rate * 1_000_000)

    # month-level accumulators, reset each month
    paid = np.zeros((4, capacity), dtype=np.int64)  # principal, interest, fee, penalty

    def record(
        loans: IntArray, days: IntArray, kind: int, p: IntArray, i: IntArray, f: IntArray, pen: IntArray
    ) -> None:
        keep = (p + i + f + pen) > 0
        if not keep.any():
            return
        loans, days, p, i, f, pen = loans[keep], days[keep], p[keep], i[keep], f[keep], pen[keep]
        pay_rows.append((loans, days, np.full(loans.shape, kind), p, i, f, pen))
        np.add.at(paid[0], loans, p)
        np.add.at(paid[1], loans, i)
        np.add.at(paid[2], loans, f)
        np.add.at(paid[3], loans, pen)

    def pay_installments(loans: IntArray, count: IntArray, days: IntArray, kind: int) -> None:
        """Penalty owed, then ``count`` installments in full, oldest first; closes loans with nothing left."""
        count = np.minimum(count, n_eff[loans] - n_paid[loans])
        lo = n_paid[loans][:, None]
        mask = (cols[None, :] >= lo) & (cols[None, :] < lo + count[:, None])
        rp, ri, rf = rem_p[loans], rem_i[loans], rem_f[loans]
        p, i, f = (rp * mask).sum(1), (ri * mask).sum(1), (rf * mask).sum(1)
        pen = penalty[loans].copy()
        rem_p[loans] = np.where(mask, 0, rp)
        rem_i[loans] = np.where(mask, 0, ri)
        rem_f[loans] = np.where(mask, 0, rf)
        penalty[loans] = 0
        n_paid[loans] += count
        record(loans, days, kind, p, i, f, pen)
        done = loans[n_paid[loans] >= n_eff[loans]]
        status[done] = _PAID_OFF
        closed_month[done] = t
        closed_day[done] = days[n_paid[loans] >= n_eff[loans]]

    def pay_partial(loans: IntArray, fraction: npt.NDArray[np.float64], days: IntArray) -> None:
        """Part of the penalty and the oldest installment: penalty, then fee, interest, principal."""
        k = n_paid[loans]
        owed = [penalty[loans], rem_f[loans, k], rem_i[loans, k], rem_p[loans, k]]
        left = np.floor(fraction * sum(owed)).astype(np.int64)
        parts = []
        for amount in owed:
            take = np.minimum(left, amount)
            parts.append(take)
            left -= take
        pen, f, i, p = parts
        penalty[loans] -= pen
        rem_f[loans, k] -= f
        rem_i[loans, k] -= i
        rem_p[loans, k] -= p
        record(loans, days, _KIND_PARTIAL, p, i, f, pen)

    for t in range(months):
        m = t + 1  # index into month_start
        first_day, last_day = int(b.month_start[m]), int(b.month_start[m + 1] - 1)
        paid[:, :n_loans] = 0
        charged_off = np.zeros(n_loans, dtype=np.int64)
        penalty_charged = np.zeros(n_loans, dtype=np.int64)

        live = np.flatnonzero(status[:n_loans] == _ACTIVE)
        # Credit-line state at the end of last month: delinquent customers are frozen (冻结额度).
        mob_prev = t - 1 - orig[live]
        state_prev_live = np.maximum(0, mob_prev - n_paid[live])
        frozen = np.bincount(cust[live], weights=(state_prev_live > 0), minlength=n) > 0
        outstanding = np.bincount(cust[live], weights=rem_p[live].sum(1), minlength=n)

        # --- behaviour of loans drawn before this month ------------------------------------------
        loans = live[orig[live] < t]
        if loans.size:
            mob = t - orig[loans]
            s_prev = np.maximum(0, mob - 1 - n_paid[loans])
            g = grade[cust[loans]]
            u = rng.random(loans.size)
            v = rng.random(loans.size)
            w = rng.random(loans.size)
            target = (u[:, None] >= cum_matrices[g, t, s_prev]).sum(1)
            target = np.minimum(target, s_prev + 1)  # float round-off in the cumulative row never skips a state
            current = s_prev == 0
            due = b.due_day(loans, np.minimum(mob - 1, MAX_TERM - 1))
            # Delinquent payments fall anywhere in the month, but an M1 borrower pays by this month's
            # bill date, so an installment cured from M1 is cured within 30 days of its due date.
            this_due = first_day + day[loans] - 1
            span_days = np.where(s_prev == 1, this_due - first_day + 1, last_day - first_day + 1)
            in_month = first_day + (rng.random(loans.size) * span_days).astype(np.int64)

            settle = current & (v < settle_by_grade[g])
            if settle.any():
                sl = loans[settle]
                sdays = np.maximum(due[settle] - rng.integers(0, 10, size=sl.size), first_day)
                lo = n_paid[sl][:, None]
                this = cols[None, :] == lo
                later = (cols[None, :] > lo) & (cols[None, :] < n_eff[sl][:, None])
                p = (rem_p[sl] * (this | later)).sum(1)
                i = (rem_i[sl] * this).sum(1)
                f = (rem_f[sl] * this).sum(1)
                rem_p[sl] = 0
                rem_i[sl] = 0
                rem_f[sl] = 0
                n_paid[sl] = n_eff[sl]
                record(sl, sdays, _KIND_SETTLEMENT, p, i, f, np.zeros_like(p))
                status[sl] = _SETTLED
                closed_month[sl] = t
                closed_day[sl] = sdays

            pays = current & ~settle & (target == 0)
            if pays.any():
                pl_ = loans[pays]
                late = w[pays] < late_by_grade[g[pays]] * truth.macro.factor[t]
                span = last_day - due[pays]
                days = np.where(
                    late,
                    due[pays] + 1 + (rng.random(pl_.size) * span).astype(np.int64),
                    np.maximum(due[pays] - rng.integers(0, 4, size=pl_.size), first_day),
                )
                for kind, sel in ((_KIND_SCHEDULED, ~late), (_KIND_LATE, late)):
                    if sel.any():
                        pay_installments(pl_[sel], np.ones(int(sel.sum()), dtype=np.int64), days[sel], kind)
                # 提前还款: principal of the last installments, their interest and fees waived.
                left = n_eff[pl_] - n_paid[pl_]
                # Not on interest-only loans: their last installment carries all the principal.
                pre = (
                    (status[pl_] == _ACTIVE)
                    & (left >= 2)
                    & (rng.random(pl_.size) < prepay_by_grade[g[pays]])
                    & (product[pl_] // len(GRADES) != _INTEREST_ONLY_POSITION)
                )
                if pre.any():
                    pr = pl_[pre]
                    h = 1 + (rng.random(pr.size) * (left[pre] - 1)).astype(np.int64)
                    cut = (cols[None, :] >= (n_eff[pr] - h)[:, None]) & (cols[None, :] < n_eff[pr][:, None])
                    p = (rem_p[pr] * cut).sum(1)
                    rem_p[pr] = np.where(cut, 0, rem_p[pr])
                    rem_i[pr] = np.where(cut, 0, rem_i[pr])
                    rem_f[pr] = np.where(cut, 0, rem_f[pr])
                    n_eff[pr] -= h
                    zero = np.zeros_like(p)
                    record(pr, days[pre], _KIND_PREPAYMENT, p, zero, zero, zero)

            delinquent = s_prev >= 1
            cure = delinquent & (target == 0)
            if cure.any():
                cl = loans[cure]
                count = np.minimum(mob[cure], n_eff[cl]) - n_paid[cl]
                pay_installments(cl, count, in_month[cure], _KIND_LATE)
            some = delinquent & (target >= 1) & (target <= s_prev)
            if some.any():
                sl = loans[some]
                pay_installments(sl, s_prev[some] + 1 - target[some], in_month[some], _KIND_LATE)
            roll = delinquent & (target == s_prev + 1) & (target < CHARGED_OFF)
            part = roll & (w < partial_by_grade[g])
            if part.any():
                pay_partial(loans[part], rng.uniform(0.1, 0.9, size=int(part.sum())), in_month[part])
            off = delinquent & (target == CHARGED_OFF)
            if off.any():
                ol = loans[off]
                charged_off[ol] = rem_p[ol].sum(1)
                rem_p[ol] = 0
                rem_i[ol] = 0
                rem_f[ol] = 0
                penalty[ol] = 0
                status[ol] = _CHARGED_OFF
                closed_month[ol] = t
                closed_day[ol] = last_day

            # 罚息 at the month end on principal still overdue, for the days overdue this month.
            still = loans[(status[loans] == _ACTIVE)]
            s_now = np.maximum(0, (t - orig[still]) - n_paid[still])
            od = still[s_now >= 1]
            if od.size:
                lo = n_paid[od][:, None]
                hi = np.minimum(t - orig[od], n_eff[od])[:, None]
                overdue_p = (rem_p[od] * ((cols[None, :] >= lo) & (cols[None, :] < hi))).sum(1)
                dpd = last_day - b.due_day(od, n_paid[od])
                days_this_month = np.minimum(dpd, last_day - first_day + 1)
                charge = (overdue_p * days_this_month * penalty_rate_micro + 500_000) // 1_000_000
                penalty[od] += charge
                penalty_charged[od] = charge

        # --- originations of this month (drawn on days 2–27, see docs/book.md) --------------------
        eligible = (
            (draws[:, t] > 0) & ~frozen & ~np.isin(np.arange(n), cust[:n_loans][status[:n_loans] == _CHARGED_OFF])
        )
        cidx = np.flatnonzero(eligible)
        counts = draws[cidx, t]
        rep = np.repeat(cidx, counts)
        if rep.size:
            median = income_fen[rep] * 0.25
            amount = np.rint(np.clip(median * np.exp(rng.normal(0.0, 0.9, size=rep.size)), 5_000, None)).astype(
                np.int64
            )
            csum = np.cumsum(amount)
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            before = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0)
            within = csum - before
            seq_in_month = np.arange(rep.size) - starts
            ok = (within <= (limit_fen[rep] - outstanding[rep])) & (loans_of_customer[rep] + seq_in_month < 999)
            rep, amount, seq_in_month = rep[ok], amount[ok], seq_in_month[ok]
            k = rep.size
        else:
            k = 0
        if k:
            slots = np.arange(n_loans, n_loans + k)
            g_new = grade[rep]
            size_class = np.searchsorted(np.array([50_000, 300_000]), amount, side="right")
            term_p = np.array([[0.50, 0.35, 0.15, 0.00], [0.30, 0.35, 0.30, 0.05], [0.10, 0.25, 0.45, 0.20]])
            cum_term = np.cumsum(term_p[size_class], axis=1)
            term_idx = np.minimum((rng.random(k)[:, None] >= cum_term).sum(1), 3)
            terms = np.asarray(TERMS)[term_idx]
            method_idx = rng.choice(4, size=k, p=METHOD_SHARES)
            method_idx = np.where((method_idx == 3) & (terms > 6), 2, method_idx)
            product_idx = method_idx * len(GRADES) + g_new
            sched = schedules_for_products(catalogue, principal_fen=amount, term=terms, product_index=product_idx)
            width = sched.n_periods
            cust[slots], orig[slots], term[slots], n_eff[slots] = rep, t, terms, terms
            day[slots] = rng.integers(2, 28, size=k)
            principal[slots], product[slots] = amount, product_idx
            rem_p[slots, :width] = sched.principal_fen
            rem_i[slots, :width] = sched.interest_fen
            rem_f[slots, :width] = sched.fee_fen
            sched_total[slots, :width] = sched.total_fen
            loan_id[slots] = b.customer_ids[rep] * 1000 + loans_of_customer[rep] + seq_in_month + 1
            np.add.at(loans_of_customer, rep, 1)
            n_loans += k
            mask = sched.mask
            rows, ks = np.nonzero(mask)
            installment_frames.append(
                pl.DataFrame(
                    {
                        "loan_id": loan_id[slots][rows],
                        "number": (ks + 1).astype(np.int16),
                        "due_on": _dates(b.month_start[t + 1 + ks + 1] + day[slots][rows] - 1),
                        "principal_fen": sched.principal_fen[rows, ks],
                        "interest_fen": sched.interest_fen[rows, ks],
                        "fee_fen": sched.fee_fen[rows, ks],
                        "balance_after_fen": sched.balance_after_fen[rows, ks],
                    }
                )
            )
            charged_off = np.concatenate([charged_off, np.zeros(k, dtype=np.int64)])
            penalty_charged = np.concatenate([penalty_charged, np.zeros(k, dtype=np.int64)])

        # --- month-end snapshot -------------------------------------------------------------------
        shown = np.flatnonzero((status[:n_loans] == _ACTIVE) | (closed_month[:n_loans] == t))
        if shown.size:
            mob = t - orig[shown]
            active = status[shown] == _ACTIVE
            state = np.where(active, np.maximum(0, mob - n_paid[shown]), 0)
            state = np.where(status[shown] == _CHARGED_OFF, CHARGED_OFF, state)
            bucket = np.where(active | (status[shown] == _CHARGED_OFF), _STATE_BUCKET[np.minimum(state, 7)], "closed")
            oldest_due = b.due_day(shown, np.minimum(n_paid[shown], MAX_TERM - 1))
            dpd = np.where(state >= 1, last_day - oldest_due, 0)
            lo = n_paid[shown][:, None]
            hi = np.minimum(mob, n_eff[shown])[:, None]
            overdue_mask = (cols[None, :] >= lo) & (cols[None, :] < hi)
            rp = rem_p[shown]
            overdue_p = (rp * overdue_mask).sum(1)
            overdue_amt = ((rp + rem_i[shown] + rem_f[shown]) * overdue_mask).sum(1) + penalty[shown]
            due_idx = np.clip(mob - 1, 0, MAX_TERM - 1)
            due_fen = np.where((mob >= 1) & (mob - 1 < n_eff[shown]), sched_total[shown, due_idx], 0)
            perf_rows.append(
                {
                    "loan_id": loan_id[shown],
                    "customer_id": b.customer_ids[cust[shown]],
                    "month_end": np.full(shown.size, last_day),
                    "mob": mob.astype(np.int16),
                    "status": _STATUS[status[shown]],
                    "bucket": bucket,
                    "dpd": dpd.astype(np.int32),
                    "principal_balance_fen": rp.sum(1),
                    "overdue_principal_fen": overdue_p,
                    "overdue_amount_fen": overdue_amt,
                    "due_fen": due_fen,
                    "paid_principal_fen": paid[0, shown],
                    "paid_interest_fen": paid[1, shown],
                    "paid_fee_fen": paid[2, shown],
                    "paid_penalty_fen": paid[3, shown],
                    "penalty_charged_fen": penalty_charged[shown],
                    "charged_off_fen": charged_off[shown],
                    "installments_remaining": np.where(active, n_eff[shown] - n_paid[shown], 0).astype(np.int16),
                }
            )

    return _block_frames(
        b,
        n_loans=n_loans,
        customers={
            "grade": grade,
            "age": age,
            "tier": tier,
            "income_fen": income_fen,
            "band": band,
            "channel": channel,
            "tenure": tenure,
            "onboarded": onboarded,
            "limit_fen": limit_fen,
        },
        loans={
            "loan_id": loan_id,
            "cust": cust,
            "product": product,
            "term": term,
            "principal": principal,
            "orig": orig,
            "day": day,
            "status": status,
            "closed_day": closed_day,
            "closed_month": closed_month,
            "n_paid": n_paid,
        },
        pay_rows=pay_rows,
        perf_rows=perf_rows,
        installment_frames=installment_frames,
    )


def _block_frames(
    b: _Block,
    *,
    n_loans: int,
    customers: dict[str, Any],
    loans: dict[str, Any],
    pay_rows: list[tuple[IntArray, ...]],
    perf_rows: list[dict[str, Any]],
    installment_frames: list[pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    c = customers
    n_cust = b.n_cust
    last_month = b.config.months - 1
    lo = {k: v[:n_loans] for k, v in loans.items()}
    cust_ids = b.customer_ids

    # account status at the book's last month end
    charged = np.zeros(n_cust, dtype=bool)
    charged[lo["cust"][lo["status"] == _CHARGED_OFF]] = True
    perf = pl.concat([pl.DataFrame(r) for r in perf_rows]) if perf_rows else None
    frozen = np.zeros(n_cust, dtype=bool)
    if perf is not None:
        last_day = int(b.month_start[last_month + 2] - 1)
        late_customers = (
            perf.filter((pl.col("month_end") == last_day) & pl.col("bucket").is_in(["M1", "M2", "M3", "M4+"]))
            .get_column("customer_id")
            .to_numpy()
        )
        frozen[late_customers - cust_ids[0]] = True
    account_status = np.where(charged, "closed", np.where(frozen, "frozen", "open"))

    customers_df = pl.DataFrame(
        {
            "customer_id": cust_ids,
            "age": c["age"],
            "city_tier": np.array(schemas.CITY_TIERS)[c["tier"]],
            "income_band": np.array(schemas.INCOME_BANDS)[c["band"]],
            "monthly_income_fen": c["income_fen"],
            "channel": np.array(schemas.CHANNELS)[c["channel"]],
            "onboarded_on": _dates(c["onboarded"]),
            "tenure_months": c["tenure"],
            "risk_grade": np.array(GRADES)[c["grade"]],
        }
    )
    accounts_df = pl.DataFrame(
        {
            "account_id": cust_ids,
            "customer_id": cust_ids,
            "opened_on": _dates(c["onboarded"]),
            "credit_limit_fen": c["limit_fen"],
            "status": account_status,
        }
    )

    catalogue = b.catalogue
    product_ids = np.array([p.id for p in catalogue])
    product_methods = np.array([p.method.value for p in catalogue])
    annual = np.array([float(p.annual_rate) if p.annual_rate is not None else np.nan for p in catalogue])
    fee = np.array([float(p.fee_rate) if p.fee_rate is not None else np.nan for p in catalogue])
    orig_day = b.month_start[lo["orig"] + 1] + lo["day"] - 1
    first_due = b.month_start[lo["orig"] + 2] + lo["day"] - 1
    maturity = b.month_start[lo["orig"] + 1 + lo["term"]] + lo["day"] - 1
    vintage = np.datetime_as_string(np.datetime64(b.config.start_month, "M") + lo["orig"], unit="M")
    loans_df = pl.DataFrame(
        {
            "loan_id": lo["loan_id"],
            "account_id": cust_ids[lo["cust"]],
            "customer_id": cust_ids[lo["cust"]],
            "product_id": product_ids[lo["product"]],
            "method": product_methods[lo["product"]],
            "term_months": lo["term"].astype(np.int16),
            "annual_rate": annual[lo["product"]],
            "fee_rate": fee[lo["product"]],
            "principal_fen": lo["principal"],
            "originated_on": _dates(orig_day),
            "first_due_on": _dates(first_due),
            "maturity_on": _dates(maturity),
            "vintage": vintage,
            "status": _STATUS[lo["status"]],
            "closed_on": _dates(lo["closed_day"]),
        }
    ).with_columns(
        pl.col("annual_rate").fill_nan(None),
        pl.col("fee_rate").fill_nan(None),
        pl.when(pl.col("status") != "active").then(pl.col("closed_on")).alias("closed_on"),
    )

    if pay_rows:
        arrays = [np.concatenate([r[k] for r in pay_rows]) for k in range(7)]
        slot, days, kind, p, i, f, pen = arrays
        payments = pl.DataFrame(
            {
                "loan_id": lo["loan_id"][slot],
                "customer_id": cust_ids[lo["cust"][slot]],
                "paid_on": _dates(days),
                "kind": _KINDS[kind],
                "amount_fen": p + i + f + pen,
                "principal_fen": p,
                "interest_fen": i,
                "fee_fen": f,
                "penalty_fen": pen,
                "_order": np.arange(slot.size),
            }
        ).sort(["loan_id", "paid_on", "_order"])
        payments = payments.with_columns(
            (pl.col("loan_id") * 100 + pl.col("loan_id").cum_count().over("loan_id").cast(pl.Int64)).alias("payment_id")
        ).drop("_order")
    else:
        payments = schemas.PAYMENTS.empty()

    performance = (
        perf.with_columns(pl.col("month_end").cast(pl.Int32).cast(pl.Date)).sort(["loan_id", "month_end"])
        if perf is not None
        else schemas.PERFORMANCE.empty()
    )
    installments = (
        pl.concat(installment_frames).sort(["loan_id", "number"])
        if installment_frames
        else schemas.INSTALLMENTS.empty()
    )
    return {
        "customers": schemas.CUSTOMERS.conform(customers_df),
        "accounts": schemas.ACCOUNTS.conform(accounts_df),
        "loans": schemas.LOANS.conform(loans_df.sort("loan_id")),
        "installments": schemas.INSTALLMENTS.conform(installments),
        "payments": schemas.PAYMENTS.conform(payments),
        "performance": schemas.PERFORMANCE.conform(performance),
    }
