"""Plan use cases (退出方案): check a plan, build its offers table, accept an offer.

* :func:`check_plan_file` / :func:`run_plan`: the plan's segments over the book (accounts and balance per
  segment, overlaps, gaps), its offers priced for every open loan and both checked by the compliance engine.
  Per partition (a partition holds whole customers) and merged, in this process or on Dask.
* :func:`build_offers`: the same, writing ``data/offers/<plan>/part-*.parquet`` (one row per loan and
  option), ``skipped.parquet``, ``findings.parquet`` and, last, ``plan.json`` (the plan as validated, the
  offer date and the counts): acceptance reads the plan from there.
* :func:`accept_offer`: re-prices the option from the ledger on the day (never from the table's numbers),
  refuses it through the compliance engine with the rule id when it breaks a rule, then re-schedules the
  loan atomically (:func:`runoff.app.loans.apply_schedule`: the old schedule archived, who and when
  recorded), idempotently by key. A loan accepts at most one option of a plan (reverse the re-schedule
  to choose again).

Offers are priced from the book's last month-end positions (payments after that month end are not seen);
the offer date defaults to that month end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select

from runoff.app.context import AppContext
from runoff.app.loans import Arrears, ScheduleChange, apply_schedule
from runoff.compliance.engine import check_offer, require_allowed
from runoff.compliance.findings import Finding
from runoff.compliance.selection import RuleBook
from runoff.documents import yaml_data
from runoff.errors import Conflict, InvalidInput, NotFound
from runoff.money import ZERO
from runoff.plan.checks import (
    BookFigures,
    OfferChecks,
    PlanCheck,
    check_offers_part,
    check_plan,
    merge_figures,
    merge_offer_checks,
    quote_facts,
)
from runoff.plan.loan_state import installment_rows, loan_states, position_of
from runoff.plan.model import EarlySettlementOption, Plan, PlanInvalid, RestructuringOption, parse_plan
from runoff.plan.offers import OfferBook, PositionSource, plan_over_loans
from runoff.plan.quoting import OptionSpec, quote_option, restructured_price
from runoff.plan.segments import observed_pd_by_bucket, observed_pd_counts, segment_summary
from runoff.plan.timeline import Phase
from runoff.portfolio.catalogue import product_catalogue
from runoff.portfolio.positions import open_positions
from runoff.servicing.position import LoanPosition
from runoff.servicing.product import Method, Product, parse_product
from runoff.servicing.quotes import Quote
from runoff.servicing.schedule import Installment, Schedule
from runoff.store.executors import run_partitions
from runoff.store.ledger.models import LoanStatus, loans
from runoff.store.workspace import Workspace

OFFERS_DIR = "offers"
MANIFEST = "plan.json"
Progress = Callable[[int, int], None]


# --- reading plans and products -------------------------------------------------------------------------------------


def read_plan(path: Path | str) -> Plan:
    """A plan YAML file validated into a :class:`Plan` (one clear error naming the file, the field, the line)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanInvalid(
            f"`plan`: cannot read {file}: {exc.strerror}; expected a plan YAML file", field="plan"
        ) from None
    return parse_plan(yaml_data(text, source=str(file), error=PlanInvalid, field="plan"), source=str(file))


def workspace_products(workspace: Workspace) -> list[Product]:
    """The products the book's loans are written on: ``data/truth/products.json`` if present, else the catalogue."""
    path = workspace.data_dir / "truth" / "products.json"
    if path.is_file():
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [parse_product(row, source=str(path)) for row in rows]
    return list(product_catalogue())


def _scores(workspace: Workspace) -> pl.DataFrame | None:
    """A PD model's scores (``data/scores``) when the workspace has them with a ``pd`` column."""
    if not workspace.has_table("scores"):
        return None
    frame = workspace.scan("scores").collect()
    return frame if "pd" in frame.columns else None


# --- the per-partition job ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanTask:
    """One partition of a plan run, as sent to a worker."""

    root: str
    plan: Plan
    partition: int
    snapshot: date  # the month end the positions are taken at
    as_of: date  # the offer date
    pd_by_bucket: dict[str, float] | None
    with_offers: bool
    write_offers: bool


@dataclass(frozen=True, slots=True)
class PartitionResult:
    figures: BookFigures
    checks: OfferChecks | None
    offers: int
    skipped: int


def _book_positions(loans_frame: pl.DataFrame, rows: pl.DataFrame, products: Sequence[Product]) -> PositionSource:
    """Exact positions rebuilt from the book's rows, for the loans the vectorized pricer leaves out."""
    by_id = {p.id: p for p in products}

    def positions(keys: Sequence[Any]) -> Mapping[Any, LoanPosition]:
        wanted = rows.filter(pl.col("loan_id").is_in(list(keys)))
        loans_by = {r["loan_id"]: r for r in loans_frame.filter(pl.col("loan_id").is_in(list(keys))).to_dicts()}
        out = {}
        for key, group in wanted.group_by("loan_id"):
            loan = loans_by[key[0]]
            out[key[0]] = position_of(loan, group.to_dicts(), by_id[str(loan["product_id"])])
        return out

    return positions


def plan_partition_task(task: PlanTask) -> PartitionResult:
    """Segments, offers and offer checks of one partition (module-level, so Dask workers can run it)."""
    workspace = Workspace(Path(task.root))
    p = task.partition
    products = workspace_products(workspace)
    loans_frame, rows = open_positions(
        loans=workspace.scan("loans", p),
        installments=workspace.scan("installments", p),
        payments=workspace.scan("payments", p),
        performance=workspace.scan("performance", p),
        as_of=task.snapshot,
    )
    loans_frame = loans_frame.rename({"originated_on": "start_date"})
    states = loan_states(loans_frame, rows, products, as_of=task.as_of)
    customers = workspace.read_partition("customers", p)
    figures, book = plan_over_loans(
        task.plan,
        states,
        rows,
        customers,
        products,
        as_of=task.as_of,
        scores=_scores(workspace),
        pd_by_bucket=task.pd_by_bucket,
        with_offers=task.with_offers,
        positions=_book_positions(loans_frame, rows, products),
    )
    if book is None:
        return PartitionResult(figures, None, 0, 0)
    if task.write_offers:
        workspace.write_partition(_offers_table(task.plan.id), p, book.offers)
        workspace.write_partition(_offers_table(task.plan.id, "skipped"), p, book.skipped)
    checks = check_offers_part(book.offers, book.skipped, task.plan, book=RuleBook(task.plan.lender))
    return PartitionResult(figures, checks, book.offers.height, book.skipped.height)


def _offers_table(plan_id: str, part: str | None = None) -> str:
    return f"{OFFERS_DIR}/{plan_id}" + (f"/{part}" if part else "")


@dataclass(frozen=True, slots=True)
class PlanRun:
    """A plan over the book: the check (findings and figures) and how many offers were priced."""

    plan: Plan
    as_of: date
    snapshot: date | None
    check: PlanCheck
    offers: int
    skipped: int
    partitions: int


def _merge(results: Sequence[PartitionResult]) -> tuple[BookFigures, OfferChecks | None, int, int]:
    figures = merge_figures([r.figures for r in results])
    checks = [r.checks for r in results if r.checks is not None]
    merged = merge_offer_checks(checks) if checks else None
    return figures, merged, sum(r.offers for r in results), sum(r.skipped for r in results)


def book_snapshot(workspace: Workspace) -> date | None:
    """The book's last month end, or None without a book."""
    if not workspace.has_table("performance"):
        return None
    last = workspace.scan("performance").select(pl.col("month_end").max()).collect().item()
    return last if isinstance(last, date) else None


def run_plan(
    plan: Plan,
    workspace: Workspace,
    *,
    as_of: date | None = None,
    with_offers: bool = True,
    write_offers: bool = False,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> PlanRun:
    """The plan over the workspace's book, checked; without a book, the plan alone (timeline, evidence, rules)."""
    snapshot = book_snapshot(workspace)
    partitions = workspace.partitions("loans") if snapshot is not None else []
    if snapshot is None or not partitions:
        day = as_of or plan.timeline.start
        figures = merge_figures([_empty_figures(plan)])
        return PlanRun(plan, day, None, check_plan(plan, figures, as_of=day), 0, 0, 0)
    day = as_of or snapshot
    if day < snapshot:
        raise InvalidInput(
            f"`as_of`: {day.isoformat()} is before the book's last month end {snapshot.isoformat()}; "
            "expected the month end or a later date",
            field="as_of",
        )
    pd_by_bucket = None
    if plan.assumptions.pd_by_bucket is None and _scores(workspace) is None:
        counts = [observed_pd_counts(workspace.scan("performance", p)) for p in partitions]
        pd_by_bucket = observed_pd_by_bucket(counts)
        if pd_by_bucket is None:
            raise InvalidInput(
                "`assumptions.pd_by_bucket`: the book is too short to observe 12-month defaults and has no scores "
                "table; give a PD per bucket in the plan's assumptions",
                field="assumptions.pd_by_bucket",
            )
    if write_offers:
        shutil.rmtree(workspace.data_dir / OFFERS_DIR / plan.id, ignore_errors=True)
    tasks = [
        PlanTask(str(workspace.root.resolve()), plan, p, snapshot, day, pd_by_bucket, with_offers, write_offers)
        for p in partitions
    ]
    results = run_partitions(plan_partition_task, tasks, list, scheduler=scheduler, progress=progress)
    figures, checks, offers, skipped = _merge(results)
    verdict = check_plan(plan, figures, as_of=day, offers=checks)
    return PlanRun(plan, day, snapshot, verdict, offers, skipped, len(partitions))


def _empty_figures(plan: Plan) -> BookFigures:
    empty = pl.DataFrame(
        schema={
            "segment": pl.String,
            "loans": pl.Int64,
            "balance_fen": pl.Int64,
            "overdue_fen": pl.Int64,
            "dpd": pl.Int64,
            "pd": pl.Float64,
        }
    )
    return BookFigures(
        summary=segment_summary(empty, plan),
        overlaps=pl.DataFrame(schema={"segment": pl.String, "other": pl.String, "accounts": pl.Int64}),
        unassigned=0,
        in_several=0,
    )


def check_plan_file(path: Path | str, workspace: Workspace, **kwargs: Any) -> PlanRun:
    """``runoff plan check``: read the plan, run it over the book (offers priced in memory), check it."""
    return run_plan(read_plan(path), workspace, **kwargs)


@dataclass(frozen=True, slots=True)
class OffersBuilt:
    """Where the offers table was written and what it holds."""

    run: PlanRun
    folder: Path

    def as_dict(self) -> dict[str, Any]:
        check = self.run.check
        return {
            "plan_id": self.run.plan.id,
            "as_of": self.run.as_of,
            "snapshot": self.run.snapshot,
            "folder": str(self.folder),
            "offers": self.run.offers,
            "skipped": self.run.skipped,
            "partitions": self.run.partitions,
            "blocked": check.blocked,
            "counts": check.counts(),
        }


def build_offers(
    plan: Plan,
    workspace: Workspace,
    *,
    as_of: date | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> OffersBuilt:
    """``runoff plan offers``: price and check every offer, write the offers table, then ``plan.json`` last."""
    if book_snapshot(workspace) is None:
        raise NotFound(f"no book in {workspace.data_dir}; run `runoff generate` or `runoff import` first")
    run = run_plan(plan, workspace, as_of=as_of, write_offers=True, scheduler=scheduler, progress=progress)
    folder = workspace.data_dir / OFFERS_DIR / plan.id
    folder.mkdir(parents=True, exist_ok=True)
    table = run.check.offer_findings
    if table.width:
        workspace.write_frame(f"{OFFERS_DIR}/{plan.id}/findings.parquet", table)
    manifest = {
        "plan": plan.model_dump(mode="json"),
        "as_of": run.as_of.isoformat(),
        "snapshot": run.snapshot.isoformat() if run.snapshot else None,
        "source": "book",
        "offers": run.offers,
        "skipped": run.skipped,
        "blocked": run.check.blocked,
    }
    workspace.write_json(f"{OFFERS_DIR}/{plan.id}/{MANIFEST}", manifest)
    return OffersBuilt(run, folder)


def read_offers(workspace: Workspace, plan_id: str) -> pl.LazyFrame:
    """The offers table of a plan (built by :func:`build_offers`)."""
    return workspace.scan(_offers_table(plan_id))


# --- acceptance -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acceptance:
    """An accepted offer: the loan's new live schedule version, the quote applied and the warnings it carried."""

    plan_id: str
    loan_id: str
    option_id: str
    option: str
    as_of: date
    change: ScheduleChange
    idempotency_key: str
    quote: Quote | None  # None when replayed
    findings: tuple[Finding, ...] = ()

    @property
    def replayed(self) -> bool:
        return self.change.replayed

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "plan_id": self.plan_id,
            "loan_id": self.loan_id,
            "option_id": self.option_id,
            "option": self.option,
            "as_of": self.as_of,
            "version": self.change.version,
            "previous_version": self.change.previous_version,
            "replayed": self.replayed,
            "idempotency_key": self.idempotency_key,
            "warnings": [f.model_dump(mode="json") for f in self.findings],
        }
        if self.quote is not None:
            q = self.quote
            out.update(
                pay_now=q.pay_now,
                total_cost=q.total_cost,
                current_remaining=q.current_remaining,
                saving=q.saving,
                apr_nominal=q.apr.nominal if q.apr is not None else None,
                term=len(q.schedule.installments),
                first_due=q.schedule.installments[0].due_date,
                maturity=q.schedule.installments[-1].due_date,
            )
        return out


def offer_plans(workspace: Workspace) -> list[str]:
    """Plans whose offers table exists (their ``plan.json`` was written)."""
    folder = workspace.data_dir / OFFERS_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / MANIFEST).is_file())


def load_offers_plan(workspace: Workspace, plan_id: str | None = None) -> tuple[Plan, dict[str, Any]]:
    """The plan an offers table was built from (its ``plan.json``); with one plan built, ``plan_id`` may be left out."""
    built = offer_plans(workspace)
    if plan_id is None:
        if not built:
            raise NotFound(
                f"no offers table in {workspace.data_dir / OFFERS_DIR}; run `runoff plan offers PLAN.yaml` first"
            )
        if len(built) > 1:
            raise InvalidInput(
                f"`plan`: offers exist for several plans ({', '.join(built)}); name one with --plan", field="plan"
            )
        plan_id = built[0]
    if plan_id not in built:
        raise NotFound(
            f"`plan`: no offers table for plan {plan_id!r}; expected one of {', '.join(built) or '(none built)'}",
            field="plan",
        )
    manifest = workspace.read_json(f"{OFFERS_DIR}/{plan_id}/{MANIFEST}")
    return parse_plan(manifest["plan"], source=f"{OFFERS_DIR}/{plan_id}/{MANIFEST}"), manifest


def _offer_row(workspace: Workspace, plan: Plan, loan_id: str, option_id: str) -> dict[str, Any]:
    rows = read_offers(workspace, plan.id).filter(pl.col("loan_id") == loan_id).collect()
    if rows.height == 0:
        raise NotFound(f"`loan`: loan {loan_id} has no offer in plan {plan.id}'s offers table", field="loan")
    chosen = rows.filter(pl.col("option_id") == option_id)
    if chosen.height == 0:
        offered = ", ".join(rows.get_column("option_id").to_list())
        raise InvalidInput(
            f"`option`: {option_id!r} is not offered to loan {loan_id} (segment {rows.get_column('segment')[0]}); "
            f"expected one of {offered}",
            field="option",
        )
    row: dict[str, Any] = chosen.row(0, named=True)
    return row


def _default_key(plan_id: str, loan_id: str, option_id: str) -> str:
    key = f"offer:{plan_id}:{loan_id}:{option_id}"
    return key if len(key) <= 128 else "offer:" + hashlib.sha256(key.encode()).hexdigest()


def _reason(plan_id: str, option_id: str) -> str:
    reason = f"offer:{plan_id}:{option_id}"
    return reason if len(reason) <= 64 else reason[:64]


def _applied_schedule(quote: Quote, option: OptionSpec) -> tuple[Schedule, Arrears | None]:
    """The schedule the ledger makes live and the arrears carried (due on the day) under it.

    A settlement becomes one installment due on the day (principal, interest, fees) with its penalty
    carried; a re-schedule takes the quote's schedule with interest, fees and penalty still due now carried.
    """
    due = quote.due_now
    if isinstance(option, EarlySettlementOption):
        one = Installment(1, quote.as_of, due.principal, due.interest, due.fee, ZERO, quote.as_of)
        schedule = Schedule(
            principal=due.principal,
            start_date=quote.as_of,
            method=quote.schedule.method,
            periods_per_year=quote.schedule.periods_per_year,
            installments=(one,),
            first_period_index=0,
        )
        carried = Arrears(quote.as_of, penalty=due.penalty) if due.penalty > 0 else None
        return schedule, carried
    carried = Arrears(quote.as_of, interest=due.interest, fee=due.fee, penalty=due.penalty)
    return quote.schedule, carried if carried.total > 0 else None


def accept_offer(
    *,
    loan_id: str,
    option_id: str,
    ctx: AppContext,
    workspace: Workspace,
    actor: str,
    idempotency_key: str | None = None,
    plan_id: str | None = None,
    as_of: date | None = None,
) -> Acceptance:
    """Accept ``option_id`` for ``loan_id`` (see the module docstring); ``as_of`` defaults to today's clock."""
    plan, _ = load_offers_plan(workspace, plan_id)
    option = plan.option(option_id)
    row = _offer_row(workspace, plan, loan_id, option_id)
    day = as_of or ctx.today()
    key = idempotency_key or _default_key(plan.id, loan_id, option_id)
    with ctx.uow(write=False) as uow:
        earlier = uow.ledger.schedule_version_by_key(key)
    if earlier is not None:
        if earlier.loan_id != loan_id:
            raise Conflict(
                f"`key`: {key!r} was already used for loan {earlier.loan_id}", field="key", details={"key": key}
            )
        change = ScheduleChange(loan_id, earlier.version, earlier.parent_version or 0, replayed=True)
        return Acceptance(plan.id, loan_id, option_id, option.option_kind.value, day, change, key, None)
    wave = plan.wave_of(str(row["segment"]))
    opens, closes = wave.on(Phase.OPTION_WINDOW_OPENS), wave.on(Phase.OPTION_WINDOW_CLOSES)
    if (opens is not None and day < opens) or (closes is not None and day > closes):
        raise Conflict(
            f"`as_of`: {day.isoformat()} is outside the option window of wave {wave.wave} ({opens} to {closes}); "
            "offers can be accepted only while the window is open",
            field="as_of",
        )
    with ctx.uow(write=False) as uow:
        record = uow.ledger.require_loan(loan_id)
        if record.status != LoanStatus.OPEN.value:
            raise Conflict(f"`loan`: {loan_id} is {record.status}; only an open loan can accept an offer", field="loan")
        prefix = f"offer:{plan.id}:"
        taken = [
            v
            for v in uow.ledger.schedule_versions_of(loan_id)
            if v.reason.startswith(prefix) and v.reversed_at is None and v.archived_at is None
        ]
        if taken:
            raise Conflict(
                f"`loan`: loan {loan_id} already accepted {taken[0].reason.removeprefix(prefix)} of plan {plan.id} "
                f"(schedule version {taken[0].version}); reverse it before choosing another option",
                field="loan",
            )
        position = uow.ledger.positions([record])[loan_id]
        customer = record.customer_id
        account = record.account_id
    quote = quote_option(position, option, as_of=day)
    facts = quote_facts(
        quote, position, option, plan, region=str(row.get("region") or plan.region), account_id=account,
        customer_id=customer,
    )  # fmt: skip
    findings = check_offer(facts, plan.lender)
    require_allowed(findings)
    schedule, carried = _applied_schedule(quote, option)
    annual, fee = _new_rates(position, option)
    change = apply_schedule(
        loan_id,
        schedule,
        reason=_reason(plan.id, option_id),
        actor=actor,
        uow=ctx.uow(),
        idempotency_key=key,
        annual_rate=annual,
        fee_rate=fee,
        carried=carried,
        # booked apart: capitalised interest and fee become income, a haircut goes to waivers
        capitalized_interest=quote.capitalized_interest,
        capitalized_fee=quote.capitalized_fee,
        as_of=day,
        basis=position,
    )
    return Acceptance(plan.id, loan_id, option_id, option.option_kind.value, day, change, key, quote, tuple(findings))


def _new_rates(position: LoanPosition, option: OptionSpec) -> tuple[Any, Any]:
    """The annual and fee rates the new schedule version runs at (what later quotes on it read)."""
    method = position.product.method
    annual, fee = position.contract_annual_rate, position.contract_fee_rate
    if isinstance(option, RestructuringOption):
        price = restructured_price(option, method, annual, fee)
        return price.annual_rate, price.fee_rate
    if method is Method.FLAT_FEE:
        return None, fee
    return annual, None


# --- offers from the ledger ----------------------------------------------------------------------------------------


def ledger_offers(
    plan: Plan,
    ctx: AppContext,
    *,
    as_of: date,
    customers: pl.DataFrame | None = None,
    products: Sequence[Product] | None = None,
) -> tuple[BookFigures, OfferBook]:
    """Segments and offers of the ledger's open loans (the system of record), priced from their exact positions.

    For ledgers small enough to read loan by loan (a pilot, a test, a branch); whole books go through the
    book's tables (:func:`run_plan`).
    """
    with ctx.uow(write=False) as uow:
        ids = [r[0] for r in uow.connection.execute(select(loans.c.id).where(loans.c.status == LoanStatus.OPEN.value))]
        records = uow.ledger.loans(ids)
        positions = uow.ledger.positions(records.values())
    accounts = {lid: (r.account_id, r.customer_id) for lid, r in records.items()}
    loan_frame, rows = installment_rows(list(positions.values()), as_of=as_of, accounts=accounts)
    catalogue = {p.product.id: p.product for p in positions.values()}
    for p in products or ():
        catalogue.setdefault(p.id, p)
    states = loan_states(loan_frame, rows, list(catalogue.values()), as_of=as_of)
    pd_table = None if plan.assumptions.pd_by_bucket is not None else _default_pd()
    figures, book = plan_over_loans(
        plan,
        states,
        rows,
        customers,
        list(catalogue.values()),
        as_of=as_of,
        scores=None,
        pd_by_bucket=pd_table,
        with_offers=True,
        positions=lambda keys: {k: positions[k] for k in keys if k in positions},
    )
    assert book is not None
    return figures, book


def _default_pd() -> dict[str, float]:
    raise InvalidInput(
        "`assumptions.pd_by_bucket`: offers from the ledger need a PD per bucket in the plan's assumptions "
        "(the ledger keeps no month-end history to observe defaults)",
        field="assumptions.pd_by_bucket",
    )


def write_ledger_offers(plan: Plan, workspace: Workspace, ctx: AppContext, *, as_of: date) -> OffersBuilt:
    """``runoff plan offers --source ledger``: the offers of the ledger's open loans, written like the book's."""
    customers = workspace.scan("customers").collect() if workspace.has_table("customers") else None
    if customers is not None:
        customers = customers.with_columns(pl.col("customer_id").cast(pl.String))
    figures, book = ledger_offers(plan, ctx, as_of=as_of, customers=customers, products=workspace_products(workspace))
    shutil.rmtree(workspace.data_dir / OFFERS_DIR / plan.id, ignore_errors=True)
    workspace.write_partition(_offers_table(plan.id), 0, book.offers)
    workspace.write_partition(_offers_table(plan.id, "skipped"), 0, book.skipped)
    rules = RuleBook(plan.lender)
    checks = check_offers_part(book.offers, book.skipped, plan, book=rules)
    verdict = check_plan(plan, figures, as_of=as_of, offers=checks, book=rules)
    run = PlanRun(plan, as_of, None, verdict, book.offers.height, book.skipped.height, 1)
    if verdict.offer_findings.width:
        workspace.write_frame(f"{OFFERS_DIR}/{plan.id}/findings.parquet", verdict.offer_findings)
    manifest = {
        "plan": plan.model_dump(mode="json"),
        "as_of": as_of.isoformat(),
        "snapshot": None,
        "source": "ledger",
        "offers": run.offers,
        "skipped": run.skipped,
        "blocked": verdict.blocked,
    }
    workspace.write_json(f"{OFFERS_DIR}/{plan.id}/{MANIFEST}", manifest)
    return OffersBuilt(run, workspace.data_dir / OFFERS_DIR / plan.id)
