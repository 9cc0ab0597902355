"""The main job (`make demo`): the whole wind-down on a fresh workspace, step by step.

Each step calls the same use cases as the CLI and returns a small summary; the CLI renders them.
Step 1 is a worked example of products, schedules, quotes and payments on the embedded ledger.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from runoff.app.assess import assess_book
from runoff.app.book import book_info, generate_book, init_workspace, load_ledger
from runoff.app.close_day import close_day
from runoff.app.context import AppContext, build_context
from runoff.app.ledger_check import verify_ledger
from runoff.app.loans import open_loan, quote_extension, quote_restructure, quote_settlement, show_loan
from runoff.app.models import score_book, stress_book, train_from_book
from runoff.app.notices import letter_pdf, prepare_announcement, render_loan_notice
from runoff.app.payments import post_payment
from runoff.app.plans import build_offers, read_offers, read_plan, run_plan
from runoff.compliance.facts import Channel
from runoff.config import Settings
from runoff.errors import ConfigError, InvariantBroken
from runoff.plan.notices import Language
from runoff.portfolio.generator import BookConfig
from runoff.servicing.apr import apr_of_schedule
from runoff.servicing.product import Method, Product, parse_product
from runoff.servicing.schedule import build_schedule
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
        steps.append(assessment(workspace, examples, now=ctx.clock(), track=track))
        report(steps[-1])
        steps.append(exit_plans(workspace, ctx, examples, track=track))
        report(steps[-1])
    return steps
