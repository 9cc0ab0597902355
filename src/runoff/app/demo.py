"""The main job (`make demo`): the whole wind-down on a fresh workspace, step by step.

Each step calls the same use cases as the CLI and returns a small summary; the CLI renders them.
Step 1 is a worked example of products, schedules, quotes and payments on the embedded ledger;
step 2 generates the book and loads it into the ledger; step 3 services the book's next day (a
payment file, the daily close, charge-offs, a recovery and a reversal); then the assessment and the
exit plan.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy import select

from runoff.app.assess import assess_book
from runoff.app.book import book_info, generate_book, init_workspace, load_ledger
from runoff.app.charge_offs import DEFAULT_MIN_DPD, WriteOffRun, write_off_due
from runoff.app.close_day import close_day
from runoff.app.context import AppContext, build_context
from runoff.app.ledger_check import VerifyReport, trial_balance, verify_ledger
from runoff.app.loans import open_loan, quote_extension, quote_restructure, quote_settlement, show_loan
from runoff.app.models import score_book, stress_book, train_from_book
from runoff.app.notices import letter_pdf, prepare_announcement, render_loan_notice
from runoff.app.payment_file import COLUMNS, PaymentFileResult, post_payment_file
from runoff.app.payments import post_payment
from runoff.app.plans import build_offers, read_offers, read_plan, run_plan
from runoff.app.recoveries import post_recovery
from runoff.app.reversals import reverse_payment
from runoff.compliance.facts import Channel
from runoff.config import Settings
from runoff.errors import ConfigError, InvariantBroken
from runoff.money import from_minor
from runoff.plan.notices import Language
from runoff.portfolio.generator import BookConfig
from runoff.servicing.apr import apr_of_schedule
from runoff.servicing.delinquency import accrue_penalties
from runoff.servicing.position import SCHEDULED_COMPONENTS, ZERO, LoanPosition
from runoff.servicing.product import Component, Method, Product, parse_product
from runoff.servicing.schedule import build_schedule
from runoff.store.ledger.models import ACCOUNT_KINDS, LoanStatus, loans
from runoff.store.ledger.unit_of_work import UnitOfWork
from runoff.store.workspace import Workspace

ACTOR = "demo"
WORKED_START = date(2026, 1, 31)  # a month-end drawing date: due 28 Feb, 31 Mar, 30 Apr, ...


@dataclass
class StepResult:
    """One step's headline and the figures worth printing."""

    title: str
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


Reporter = Callable[[StepResult], None]
Tracker = Callable[[str, int, int], None]
"""Told (task label, done, total) as long steps go; the CLI draws progress bars from it."""

DEMO_CUSTOMERS = 100_000
DEMO_MONTHS = 24
DEMO_SEED = 20261130


def _no_tracking(label: str, done: int, total: int) -> None:
    return None


def _bar(track: Tracker, label: str) -> Callable[[int, int], None]:
    """A (done, total) progress callback for one labelled task."""

    def update(done: int, total: int) -> None:
        track(label, done, total)

    return update


def _yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:,.2f}"


def load_products(folder: Path) -> list[Product]:
    """The example product files (examples/products/*.yaml)."""
    if not folder.is_dir():
        raise ConfigError(
            f"`examples`: {folder} is not a folder; run the demo from the repository root or pass --examples"
        )
    products = []
    for path in sorted(folder.glob("*.yaml")):
        products.append(parse_product(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path)))
    return products


def fresh_workspace(root: Path) -> Settings:
    """An empty workspace for the demo (an earlier demo run is removed first)."""
    if root.exists():
        shutil.rmtree(root)
    init_workspace(root)
    return Settings(workspace=root, database_url=None)


def worked_servicing_example(ctx: AppContext, products: list[Product]) -> StepResult:
    """Schedules and APR per example product; a loan through payments, a backdated one, quotes and a close."""
    step = StepResult("Loan maths and the ledger: schedules, APR, payments, quotes (还款计划、年化利率、还款、报价)")
    for product in products:
        term = 12 if 12 in product.terms else product.terms[-1]
        schedule = build_schedule(product, principal=Decimal("6000.00"), term=term, start_date=WORKED_START)
        apr = apr_of_schedule(schedule)
        first = schedule.installments[0]
        step.lines.append(
            f"{product.id:<24} {product.method.value:<18} 6,000.00 over {term:>2}: first {first.total:>9} "
            f"on {first.due_date}, total cost {schedule.total_interest + schedule.total_fee:>8}, "
            f"APR {apr.nominal * 100:6.2f}% nominal / {apr.effective * 100:6.2f}% effective"
        )
        step.data.setdefault("products", []).append(
            {"id": product.id, "term": term, "apr_nominal": str(apr.nominal), "apr_effective": str(apr.effective)}
        )
    flat = next(p for p in products if p.method.value == "flat-fee")
    opened = open_loan(
        product=flat,
        principal="6000.00",
        term=12,
        start_date=WORKED_START,
        actor=ACTOR,
        uow=ctx.uow(),
        loan_id="DEMO-1",
        customer_id="C-DEMO-1",
    )
    first, second, third = opened.schedule.installments[:3]
    post_payment("DEMO-1", first.total, value_date=first.due_date, idempotency_key="demo-1", actor=ACTOR, uow=ctx.uow())
    replay = post_payment(
        "DEMO-1", first.total, value_date=first.due_date, idempotency_key="demo-1", actor=ACTOR, uow=ctx.uow()
    )
    close_day(as_of=date(2026, 4, 15), actor=ACTOR, uow=ctx.uow())
    # a late, partial payment whose value date lies before the last close: the loan is reposted
    post_payment(
        "DEMO-1", Decimal("300.00"), value_date=date(2026, 4, 5), idempotency_key="demo-2", actor=ACTOR, uow=ctx.uow()
    )
    closed = close_day(as_of=date(2026, 4, 30), actor=ACTOR, uow=ctx.uow())
    as_of = date(2026, 4, 30)
    settle = quote_settlement("DEMO-1", as_of=as_of, uow=ctx.uow(write=False))
    extend = quote_extension("DEMO-1", as_of=as_of, extra_periods=6, uow=ctx.uow(write=False))
    restructure = quote_restructure(
        "DEMO-1",
        as_of=as_of,
        term=18,
        annual_rate=Decimal("0.08"),
        method=Method.EQUAL_INSTALLMENT,
        waive_penalties=True,
        uow=ctx.uow(write=False),
    )
    view = show_loan("DEMO-1", as_of=as_of, uow=ctx.uow(write=False))
    report = verify_ledger(uow=ctx.uow(write=False))
    if report.findings:
        raise InvariantBroken(f"ledger verify found {len(report.findings)} problem(s) in the worked example")
    step.lines += [
        f"loan DEMO-1 on {flat.id}: 6,000.00 over 12 from {WORKED_START}; installment 1 paid on time "
        f"({first.total}), the same key again was a replay: {replay.replayed}",
        f"installments 2 and 3 ({second.total}, {third.total}) fell due unpaid; 300.00 paid late with value date "
        f"2026-04-05 after the 15 April close, so the loan was reposted ({closed.reposted} reposted at the "
        f"{closed.as_of} close); on {as_of}: {view.days_past_due} days past due, bucket {view.bucket.value}",
        f"quotes on {as_of}: settle now {settle.pay_now}; extend by 6 months -> "
        f"{len(extend.schedule.installments)} installments of about {extend.schedule.installments[0].total}; "
        f"restructure to 18 equal installments at 8 % with penalties waived -> "
        f"{restructure.schedule.installments[0].total} a month, APR "
        f"{restructure.apr.nominal * 100 if restructure.apr else 0:.2f}%",
        f"ledger verify: clean ({report.loans} loans, {report.payments} payments, {report.journal_entries} entries)",
    ]
    return step


def generated_book(
    workspace: Workspace, ctx: AppContext, *, customers: int, months: int, seed: int, track: Tracker
) -> StepResult:
    """A synthetic book generated into the workspace, its open loans loaded into the ledger, a daily close."""
    step = StepResult("The book: generate, load the ledger, daily close (账簿：生成、入账、日终)")
    config = BookConfig(customers=customers, months=months, seed=seed)
    generated = generate_book(workspace, config, progress=_bar(track, "generating the book"))
    loaded = load_ledger(workspace, ctx, actor=ACTOR, progress=_bar(track, "loading the ledger"))
    closed = close_day(
        as_of=loaded.as_of + timedelta(days=1),
        actor=ACTOR,
        uow=ctx.uow(),
        progress=lambda label, d, t: track(f"daily close: {label}", d, t),
    )
    summary = book_info(workspace, progress=_bar(track, "summarising the book"))
    totals = generated.totals
    step.lines.append(
        f"generated {customers:,} customers over {months} months: {totals.get('loans_rows', 0):,} loans ({_yuan(totals.get('principal_fen', 0))} yuan lent), "
        f"{totals.get('payments_rows', 0):,} payments, {totals.get('performance_rows', 0):,} month-end rows"
    )
    step.lines.append(
        f"ledger: {loaded.loans:,} open loans with {loaded.installments:,} installments as of {loaded.as_of} "
        f"in {loaded.seconds:.1f} s; close of {closed.as_of}: {closed.delinquent_loans:,} delinquent loans, "
        f"penalty accrued {_yuan(closed.penalty_fen)} in {closed.seconds:.1f} s"
    )
    for row in summary.by_bucket().iter_rows(named=True):
        step.lines.append(
            f"  {row['bucket']:<12} {row['loans']:>9,} loans  {_yuan(row['balance_fen']):>18} yuan"
            f"  {row['share_of_balance'] * 100:6.2f}% of open balance"
        )
    for name, fig in generated.calibration.items():
        ratio = fig.get("ratio")
        if ratio is None or not fig.get("published_range"):
            continue
        low, high = fig["published_range"]
        step.lines.append(
            f"  {name:<15} {ratio * 100:6.2f}% = {_yuan(fig['numerator_fen'])} / {_yuan(fig['denominator_fen'])}"
            f"  (published {low * 100:.1f}–{high * 100:.1f}%: {'within' if fig['within'] else 'OUTSIDE'})"
        )
    step.data.update(
        {"generated": totals, "ledger": loaded.as_dict(), "close": closed.to_dict(), "as_of": loaded.as_of}
    )
    return step


# --- a day of servicing on the book ----------------------------------------------------------------------------

PAYMENT_FILES = "payment-files"
"""Where the demo writes the day's payment file, under data/ (``data/payments/`` is the book's payments table)."""

UNKNOWN_LOAN = "X-00000000"
"""A loan id the processor sent by mistake: the generated book's ids are digits only, so it is in no ledger."""

PAYMENT_BEHAVIOUR: tuple[tuple[int | None, float, tuple[float, float]], ...] = (
    (0, 0.92, (0.30, 0.90)),  # due on the day, nothing overdue: most debits (代扣) go through in full
    (30, 0.75, (0.30, 0.90)),  # M1: most cure (the generated book's 30-day cure rate is about 88 %)
    (90, 0.45, (0.20, 0.70)),  # M2 and M3
    (None, 0.15, (0.05, 0.30)),  # M4+: mostly small payments promised to the collectors
)
"""(highest DPD of the band, share of rows paying in full, a partial row's share of what is due: low, high)."""

FALLBACK_MIN_DPD = 90
"""The charge-off threshold used when no loan is 180+ DPD (a small book): 90 days, where a loan is non-performing."""

RECOVERED_SHARE = Decimal("0.20")
BOUNCED = "bounced: the payer's bank returned the debit (退票)"


@dataclass(frozen=True, slots=True)
class AmountDue:
    """What an open loan owes on ``day``: every installment due on or before it with penalty to the day, less credit."""

    loan_id: str
    days_past_due: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """A row of the demo's payment file, and what the demo meant by it.

    ``kind``: ``full`` (what is due), ``part``, or a deliberate mistake: ``unknown-loan``,
    ``repeated-key`` (another amount under a key already in the file), ``negative-amount``.
    """

    loan_id: str
    amount: Decimal
    value_date: date
    idempotency_key: str
    kind: str
    days_past_due: int | None = None


MISTAKES = ("unknown-loan", "repeated-key", "negative-amount")


def amounts_due(day: date, *, uow: UnitOfWork) -> list[AmountDue]:
    """Open loans with something unpaid due on or before ``day`` and what settles it, read from the ledger in sets.

    One query on the ``(status, oldest_unpaid_due_date)`` index finds the loans; their positions are read in
    bulk (:meth:`~runoff.store.ledger.repository.LedgerRepository.positions_and_rows`, a few queries per 2,000
    loans). Penalty is brought to ``day`` as posting a payment with that value date does.
    """
    with uow:
        ids = list(
            uow.connection.execute(
                select(loans.c.id)
                .where(loans.c.status == LoanStatus.OPEN.value, loans.c.oldest_unpaid_due_date <= day)
                .order_by(loans.c.id)
            ).scalars()
        )
        records, versions = uow.ledger.loans_with_live_versions(ids)
        positions, _ = uow.ledger.positions_and_rows(records.values(), versions=versions)
    out: list[AmountDue] = []
    for loan_id in ids:
        position = _penalty_to(positions[loan_id], day)
        owed = sum((max(i.outstanding(c), ZERO) for i in position.due_by(day) for c in Component), ZERO)
        owed -= position.credit_balance
        oldest = records[loan_id].oldest_unpaid_due_date  # kept by the close and each posting: DPD without a replay
        if owed > 0:
            out.append(AmountDue(loan_id, max((day - oldest).days, 0) if oldest else 0, owed))
    return out


def _penalty_to(position: LoanPosition, day: date) -> LoanPosition:
    """``position`` with penalty accrued to ``day`` when any could have accrued since the last close."""
    grace = position.product.penalty.grace_days
    for inst in position.installments:
        if (day - inst.due_date).days > grace and any(inst.outstanding(c) > 0 for c in SCHEDULED_COMPONENTS):
            return accrue_penalties(position, day)
    return position


def _behaviour(dpd: int) -> tuple[float, tuple[float, float]]:
    for highest, full, part in PAYMENT_BEHAVIOUR:
        if highest is None or dpd <= highest:
            return full, part
    raise AssertionError("unreachable")  # pragma: no cover - the last band has no upper bound


def payment_rows(dues: Sequence[AmountDue], day: date, *, rng: np.random.Generator) -> list[PaymentRow]:
    """The day's payment file (代扣回盘): a row per loan with something due, then three deliberate mistakes.

    Whether a row pays in full or part follows :data:`PAYMENT_BEHAVIOUR` by the loan's DPD; a partial
    row pays a share of what is due, in whole yuan. Keys are the processor's serial numbers (流水号).
    The mistakes: an unknown loan (a third of the way down), a negative amount (two thirds), and, last,
    the first full row's key again with another amount.
    """
    pays_full = rng.random(len(dues))
    shares = rng.random(len(dues))
    rows: list[PaymentRow] = []
    for n, due in enumerate(dues):
        full, (low, high) = _behaviour(due.days_past_due)
        amount, kind = due.amount, "full"
        if pays_full[n] >= full:
            share = Decimal(f"{low + (high - low) * shares[n]:.4f}")
            part = (due.amount * share).quantize(Decimal(1), ROUND_DOWN)
            if Decimal(1) <= part < due.amount:
                amount, kind = part, "part"
        rows.append(PaymentRow(due.loan_id, amount, day, _serial(day, n + 1), kind, due.days_past_due))
    serial = len(rows)

    def mistake(kind: str, loan_id: str, amount: Decimal, key: str | None = None) -> PaymentRow:
        nonlocal serial
        serial += 1
        return PaymentRow(loan_id, amount, day, key or _serial(day, serial), kind)

    first = next((r for r in rows if r.kind == "full"), rows[0] if rows else None)
    rows.insert(len(rows) // 3, mistake("unknown-loan", UNKNOWN_LOAN, Decimal("100.00")))
    if first is not None:
        rows.insert(2 * len(rows) // 3, mistake("negative-amount", first.loan_id, -first.amount))
        rows.append(mistake("repeated-key", first.loan_id, first.amount + 100, first.idempotency_key))
    return rows


def _serial(day: date, n: int) -> str:
    return f"DK{day:%Y%m%d}{n:08d}"


def write_payment_file(rows: Sequence[PaymentRow], path: Path) -> Path:
    """``rows`` as a payment file (CSV, UTF-8, the four columns of :mod:`runoff.app.payment_file`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow((r.loan_id, f"{r.amount:.2f}", r.value_date.isoformat(), r.idempotency_key))
    return path


def servicing_day(
    workspace: Workspace,
    ctx: AppContext,
    *,
    after: date,
    delinquent_before: int,
    seed: int,
    track: Tracker,
) -> StepResult:
    """The book's next day: its payment file posted, the day closed, 180+ DPD charged off, a recovery, a reversal."""
    step = StepResult("Servicing: a day of collections (还款、核销、回收、冲正)")
    day = after + timedelta(days=1)

    started = time.perf_counter()
    track("reading amounts due from the ledger", 0, 1)
    dues = amounts_due(day, uow=ctx.uow(write=False))
    track("reading amounts due from the ledger", 1, 1)
    rows = payment_rows(dues, day, rng=np.random.default_rng(seed))
    path = write_payment_file(rows, workspace.data_dir / PAYMENT_FILES / f"{day.isoformat()}.csv")
    built = time.perf_counter()
    posted = post_payment_file(path, actor=ACTOR, uow=ctx.uow(), progress=_bar(track, "posting the payment file"))
    posting = time.perf_counter() - built
    kinds = {k: sum(1 for r in rows if r.kind == k) for k in ("full", "part")}
    deliberate = [
        {"kind": r.kind, "row": n, "idempotency_key": r.idempotency_key}
        for n, r in enumerate(rows, start=1)
        if r.kind in MISTAKES
    ]
    step.lines.append(
        f"payment file for {day}: {len(dues):,} open loans owe {sum((d.amount for d in dues), ZERO):,} yuan due "
        f"on or before it; {kinds['full']:,} rows pay that in full, {kinds['part']:,} pay part, "
        f"{len(deliberate)} are deliberately bad -> {path} (amounts read from the ledger, file written: "
        f"{built - started:.1f} s)"
    )
    step.lines.append(
        f"posted: {posted.read:,} rows read = {posted.posted:,} posted + {posted.replayed:,} replayed + "
        f"{posted.refused:,} refused; {posted.amount_posted:,} yuan posted, {len(posted.loans_closed):,} loans "
        f"paid off; {posting:.1f} s"
    )
    for r in posted.refusals[:5]:
        step.lines.append(f"  refused row {r.row:,} ({r.code}, {r.field}): {r.message}")
    if posted.refused > 5:
        step.lines.append(f"  ... and {posted.refused - 5:,} more")
    if posted.refusals_file is not None:
        step.lines.append(f"  refusals report: {posted.refusals_file}")
    step.outputs.append(str(path))
    if posted.refusals_file is not None:
        step.outputs.append(str(posted.refusals_file))

    closed = close_day(
        as_of=day,
        actor=ACTOR,
        uow=ctx.uow(),
        progress=lambda label, d, t: track(f"close of {day}: {label}", d, t),
    )
    penalty = f"penalty charged {_yuan(closed.penalty_fen)}"
    if closed.penalty_fen == 0:
        penalty += " (each row posted had already charged its loan's penalty up to its value date)"
    step.lines.append(
        f"close of {day}: {closed.delinquent_loans:,} delinquent loans after it, against {delinquent_before:,} "
        f"at the {after} close; {penalty}; {closed.seconds:.1f} s"
    )

    charged = write_off_due(
        as_of=day, actor=ACTOR, uow=ctx.uow(), progress=_bar(track, f"charging off {DEFAULT_MIN_DPD}+ DPD")
    )
    fallback = charged.candidates == 0
    if fallback:
        charged = write_off_due(
            as_of=day,
            actor=ACTOR,
            uow=ctx.uow(),
            min_dpd=FALLBACK_MIN_DPD,
            progress=_bar(track, f"charging off {FALLBACK_MIN_DPD}+ DPD"),
        )
    step.lines.append(_charge_off_line(charged, fallback=fallback))

    recovery = None
    if charged.written_off:
        target = charged.written_off[0]
        debt = target.contractual_debt
        amount = min(max((debt * RECOVERED_SHARE).quantize(Decimal(1), ROUND_DOWN), Decimal("0.01")), debt)
        recovery = post_recovery(
            target.loan_id,
            amount,
            value_date=day,
            idempotency_key=f"recovery:{target.loan_id}:{day.isoformat()}",
            actor=ACTOR,
            uow=ctx.uow(),
        )
        step.lines.append(
            f"recovery on charged-off loan {recovery.loan_id}: {recovery.amount:,} yuan from the collection agency "
            f"(Dr cash_clearing / Cr recoveries); {recovery.owed_after:,} yuan still owed by contract"
        )
    else:
        step.lines.append("recovery: no loan was charged off, so there is none to post")

    reversal = None
    refused_rows = {r.row for r in posted.refusals}
    paid_off = set(posted.loans_closed)
    mistaken_keys = {d["idempotency_key"] for d in deliberate}
    bounced = next(
        (
            r
            for n, r in enumerate(rows, start=1)
            if r.kind == "full"
            and r.days_past_due == 0
            and n not in refused_rows
            and r.loan_id not in paid_off
            and r.idempotency_key not in mistaken_keys
        ),
        None,
    )
    if bounced is not None:
        with ctx.uow(write=False) as uow:
            payment = uow.ledger.payments_by_keys([bounced.idempotency_key])[bounced.idempotency_key]
        reversal = reverse_payment(
            payment.id,
            reason=BOUNCED,
            idempotency_key=f"reversal:{bounced.idempotency_key}",
            actor=ACTOR,
            uow=ctx.uow(),
        )
        step.lines.append(
            f"reversal: payment {reversal.payment_id} ({reversal.amount:,} on loan {reversal.loan_id}) bounced (退票): "
            f"journal entries mirrored {reversal.entries_reversed}, allocations taken back "
            f"{reversal.allocations_reversed}, loan reposted from {reversal.reposted_from}; it owes its "
            f"installment again ({reversal.outstanding_principal:,} principal outstanding, {reversal.loan_status})"
        )
    else:
        step.lines.append("reversal: no payment in full on a current loan to bounce")

    track("ledger verify and trial balance", 0, 2)
    report = verify_ledger(uow=ctx.uow(write=False))
    track("ledger verify and trial balance", 1, 2)
    balances = trial_balance(uow=ctx.uow(write=False), as_of=day)
    track("ledger verify and trial balance", 2, 2)
    debit_side = sum(v for a, v in balances.items() if ACCOUNT_KINDS[a] in ("asset", "expense"))
    credit_side = sum(v for a, v in balances.items() if ACCOUNT_KINDS[a] not in ("asset", "expense"))
    step.lines += _verify_lines(report)
    step.lines.append(
        f"trial balance (试算平衡) as of {day}: assets + expenses {_yuan(debit_side)} "
        f"{'=' if debit_side == credit_side else '!='} liabilities + income {_yuan(credit_side)}"
    )
    step.lines.append("  " + ", ".join(f"{account.value} {_yuan(v)}" for account, v in balances.items() if v))
    step.data.update(
        {
            "day": day,
            "seconds": round(time.perf_counter() - started, 1),
            "due": {"loans": len(dues), "amount": str(sum((d.amount for d in dues), ZERO))},
            "rows": {**kinds, "deliberate": deliberate},
            "payment_file": _file_summary(posted),
            "close": closed.to_dict(),
            "charge_off": {**_charge_off_summary(charged), "fallback_from": DEFAULT_MIN_DPD if fallback else None},
            "recovery": recovery.to_dict() if recovery else None,
            "reversal": reversal.to_dict() if reversal else None,
            "verify": {
                "ok": report.ok,
                "counts": report.counts,
                "loans": report.loans,
                "payments": report.payments,
                "journal_entries": report.journal_entries,
            },
            "trial_balance": {
                "balances": {a.value: str(from_minor(v)) for a, v in balances.items()},
                "debits_equal_credits": debit_side == credit_side,
            },
        }
    )
    return step


def _verify_lines(report: VerifyReport) -> list[str]:
    """Verify's verdict; a finding is shown, not raised, so the demo still ends by listing its reports."""
    checked = (
        f"{len(report.counts)} checks over {report.loans:,} loans, {report.payments:,} payments and "
        f"{report.journal_entries:,} journal entries in {report.seconds:.1f} s"
    )
    if report.ok:
        return [f"ledger verify: clean, {checked}"]
    broken = ", ".join(f"{name} {n:,}" for name, n in report.counts.items() if n)
    return [
        f"ledger verify: NOT CLEAN ({broken}), {checked}",
        *(f"  {f.check}: {f.message}" for f in report.findings[:3]),
    ]


def _charge_off_line(run: WriteOffRun, *, fallback: bool) -> str:
    owed = sum((r.contractual_debt for r in run.written_off), ZERO)
    line = (
        f"charge-off (核销) at {run.min_dpd}+ DPD as of {run.as_of}: {len(run.written_off):,} of {run.candidates:,} "
        f"loans, {run.principal:,} principal + {run.penalty:,} penalty = {run.principal + run.penalty:,} yuan "
        f"written off; {owed:,} yuan still owed by contract (账销案存)"
    )
    if run.refused:
        line += f"; {len(run.refused):,} refused ({run.refused[0][1].message})"
    if fallback:
        line += (
            f" — no open loan was {DEFAULT_MIN_DPD}+ DPD on {run.as_of} in this book, so the policy ran at "
            f"{FALLBACK_MIN_DPD}+ DPD, where a loan is non-performing"
        )
    return line


def _charge_off_summary(run: WriteOffRun) -> dict[str, Any]:
    return {
        "as_of": run.as_of,
        "min_dpd": run.min_dpd,
        "candidates": run.candidates,
        "loans": len(run.written_off),
        "loan_ids": [r.loan_id for r in run.written_off],
        "refused": len(run.refused),
        "principal": str(run.principal),
        "penalty": str(run.penalty),
        "written_off": str(run.principal + run.penalty),
    }


def _file_summary(result: PaymentFileResult) -> dict[str, Any]:
    return {
        "file": str(result.file),
        "read": result.read,
        "posted": result.posted,
        "replayed": result.replayed,
        "refused": result.refused,
        "amount_posted": str(result.amount_posted),
        "loans_closed": len(result.loans_closed),
        "refusals_file": str(result.refusals_file) if result.refusals_file else None,
        "refusals": [
            {"row": r.row, "idempotency_key": r.idempotency_key, "code": r.code, "field": r.field, "message": r.message}
            for r in result.refusals
        ],
    }


STRESS_SCENARIO = "severe-2020.yaml"


def assessment(workspace: Workspace, examples: Path, *, now: datetime, track: Tracker) -> StepResult:
    """PD models trained and validated out of time, the book scored, a stress test, the assessment report."""
    step = StepResult("Assess the book: PD models, stress, early warning, report (风险评估与预警)")
    for kind in ("scorecard", "lightgbm"):
        trained = train_from_book(workspace, now=now, kind=kind, progress=_bar(track, f"training {kind}"))
        oot = trained.record.metrics.get("out_of_time", {})
        window = trained.record.data_window
        step.lines.append(
            f"{kind:<9} model {trained.record.version}: {trained.record.training_rows:,} training rows; "
            f"out of time at {window.get('out_of_time_observation', '?')}: AUC {oot.get('auc', float('nan')):.3f}, "
            f"KS {oot.get('ks', float('nan')):.3f}, Brier {oot.get('brier', float('nan')):.4f}"
        )
        step.data.setdefault("models", {})[kind] = {"version": trained.record.version, "out_of_time": oot}
    scored = score_book(workspace, progress=_bar(track, "scoring customers"))
    step.lines.append(
        f"scored {scored.get('rows', 0):,} customers with model {scored.get('model_version', '?')} as of "
        f"{scored.get('as_of', '?')}: mean PD {(scored.get('mean_pd') or 0) * 100:.2f}%"
    )
    stressed = stress_book(workspace, examples / "stress" / STRESS_SCENARIO)
    t = stressed["totals"]
    step.lines.append(
        f"stress {stressed['scenario']['name']}: expected loss {t['el_base_yuan']:,.0f} -> {t['el_stressed_yuan']:,.0f}"
        f" yuan ({t['el_base_rate']:.2%} -> {t['el_stressed_rate']:.2%} of {t['ead_yuan']:,.0f} exposure)"
    )
    result = assess_book(workspace, now=now, progress=_bar(track, "assessing the book"))
    h = result.headline
    if h:
        step.lines.append(
            f"as of {result.as_of}: {h['open_loans']:,} open loans, {_yuan(h['open_balance_fen'])} yuan; overdue by "
            f"balance M1+ {h['m1plus_balance_rate']:.2%}, M3+ {h['m3plus_balance_rate']:.2%}, "
            f"M4+ {h['m4plus_balance_rate']:.2%} (M1+ by count {h['m1plus_count_rate']:.2%})"
        )
    step.lines.append(
        f"early warning: {len(result.warning.raised)} alert(s) raised, {len(result.warning.open_alerts)} open; "
        f"{len(result.flagged_segments)} segment(s) flagged for the internal risk review (内部风险排查)"
    )
    step.outputs.append(str(result.report))
    step.data["assessment"] = result.as_dict()
    return step


EXAMPLE_PLANS = ("phased-three-wave", "abrupt-closure", "breaks-rules")


def exit_plans(workspace: Workspace, ctx: AppContext, examples: Path, *, track: Tracker) -> StepResult:
    """Offers for the phased plan, the three example plans checked, sample notices in both languages."""
    step = StepResult("The exit plan: offers, compliance review, notices (退出方案：报价、合规审查、告知书)")
    plans = {name: read_plan(examples / "plans" / f"{name}.yaml") for name in EXAMPLE_PLANS}
    phased = plans["phased-three-wave"]
    built = build_offers(phased, workspace, progress=_bar(track, "pricing offers"))
    step.lines.append(
        f"{phased.id}: {built.run.offers:,} offers priced for the book as of {built.run.as_of} "
        f"({built.run.skipped:,} accounts without an allowed option) -> {built.folder}"
    )
    step.outputs.append(str(built.folder))
    for name, plan in plans.items():
        run = built.run if plan is phased else run_plan(plan, workspace, progress=_bar(track, f"checking {name}"))
        counts = run.check.counts()
        verdict = "BLOCKED" if run.check.blocked else "passes"
        step.lines.append(
            f"plan check {name}: {verdict} ("
            + ", ".join(f"{n} {severity}" for severity, n in counts.items() if n)
            + ")"
        )
        step.data.setdefault("plans", {})[name] = {"blocked": run.check.blocked, "counts": counts}
        if name == "breaks-rules":
            for finding in sorted(run.check.findings, key=lambda f: (not f.blocks, f.rule_id)):
                step.lines.append(f"  {finding.severity.value:<5} {finding.message}")
    offers = read_offers(workspace, phased.id).select("loan_id").head(1).collect()
    out = workspace.root / "reports" / "notices"
    out.mkdir(parents=True, exist_ok=True)
    if offers.height:
        loan_id = str(offers.item(0, 0))
        for language in (Language.ZH_CN, Language.EN):
            for channel in (Channel.LETTER, Channel.SMS):
                prepared = render_loan_notice(
                    phased, loan_id, uow=ctx.uow(write=False), as_of=built.run.as_of, language=language, channel=channel
                )
                path = out / f"{loan_id}.{language.value}.{channel.value}{prepared.rendered.suffix}"
                path.write_text(prepared.rendered.body, encoding="utf-8")
                step.outputs.append(str(path))
                if channel is Channel.LETTER:
                    try:
                        pdf = out / f"{loan_id}.{language.value}.letter.pdf"
                        pdf.write_bytes(letter_pdf(prepared.rendered))
                        step.outputs.append(str(pdf))
                    except ConfigError as exc:  # no CJK font on this machine: the HTML letter stands
                        step.lines.append(f"  (PDF letter skipped: {exc.message})")
        step.lines.append(f"notices for loan {loan_id} rendered from the ledger in zh-CN and English (letter, SMS)")
    for language in (Language.ZH_CN, Language.EN):
        page = prepare_announcement(phased, as_of=phased.timeline.start, language=language)
        path = out / f"announcement.{language.value}.html"
        path.write_text(page.rendered.body, encoding="utf-8")
        step.outputs.append(str(path))
    return step


def run_demo(
    root: Path,
    examples: Path,
    *,
    report: Reporter,
    track: Tracker = _no_tracking,
    customers: int = DEMO_CUSTOMERS,
    months: int = DEMO_MONTHS,
    seed: int = DEMO_SEED,
) -> list[StepResult]:
    """Run every step of the main job in ``root`` and hand each result to ``report`` as it finishes."""
    settings = fresh_workspace(root)
    workspace = Workspace.open(root)
    products = load_products(examples / "products")
    steps: list[StepResult] = []
    # the worked example has a ledger of its own, so the book's ledger holds the generated book only
    worked = Settings(workspace=root / "worked-example", database_url=None)
    worked.workspace.mkdir()
    with build_context(worked) as ctx:
        steps.append(worked_servicing_example(ctx, products))
        report(steps[-1])
    with build_context(settings) as ctx:
        steps.append(generated_book(workspace, ctx, customers=customers, months=months, seed=seed, track=track))
        report(steps[-1])
        close = steps[-1].data["close"]
        steps.append(
            servicing_day(
                workspace,
                ctx,
                after=date.fromisoformat(close["as_of"]),
                delinquent_before=close["delinquent_loans"],
                seed=seed,
                track=track,
            )
        )
        report(steps[-1])
        steps.append(assessment(workspace, examples, now=ctx.clock(), track=track))
        report(steps[-1])
        steps.append(exit_plans(workspace, ctx, examples, track=track))
        report(steps[-1])
    return steps
