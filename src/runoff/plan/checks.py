"""The plan check (方案合规审查): a plan and its offers turned into the compliance engine's facts and checked.

The plan becomes :class:`~runoff.compliance.facts.PlanFacts`: each wave's stop of new draws with its public
announcement and individual notices (notice periods), a fee increase if the plan charges a closure fee, a
terms change for segments whose default action accelerates, segment coverage (accounts per segment, none
left out, none matching two segments), whether a segment accelerates accounts that are not in default,
the actions the plan takes and the evidence it holds. The offers table goes to the engine's vectorized
offer check (annualised rate caps by IRR, settlement compensation, interest beyond the settlement date);
the worst offer of each segment and option also goes through the full row check (disclosure, dates such
as an extension applied for before maturity, bullet terms, prohibitions).

Offer findings are many (one per offer); the check keeps them all in a table and reports one finding per
rule, severity and option with the count and an example. Plan-integrity findings of this module carry rule
ids starting ``PLAN-``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import polars as pl

from runoff.compliance.engine import check_offer, check_offers_frame, check_plan_facts
from runoff.compliance.facts import (
    CollectorType,
    NoticeType,
    OfferFacts,
    PlanAction,
    PlanFacts,
    PlannedChange,
    SegmentFacts,
)
from runoff.compliance.findings import Finding, sort_findings
from runoff.compliance.selection import RuleBook
from runoff.compliance.taxonomy import RuleKind, RuleStatus, Severity
from runoff.money import from_minor
from runoff.plan.model import DefaultAction, Plan
from runoff.plan.quoting import OptionSpec, quote_columns
from runoff.plan.segments import merge_overlaps
from runoff.plan.timeline import Phase
from runoff.servicing.position import LoanPosition
from runoff.servicing.product import Component, Method
from runoff.servicing.quotes import Quote

PLAN_CITATION = "runoff plan integrity (issue 5): the plan's own consistency, not a legal rule"


@dataclass(frozen=True, slots=True)
class BookFigures:
    """What the plan check needs to know about the book: accounts and balance per segment, and the rest."""

    summary: pl.DataFrame  # runoff.plan.segments.SUMMARY_SCHEMA
    overlaps: pl.DataFrame  # runoff.plan.segments.OVERLAP_SCHEMA
    unassigned: int
    in_several: int
    unassigned_balance_fen: int = 0
    regions: frozenset[str] = frozenset()
    last_maturity: date | None = None

    @property
    def accounts(self) -> int:
        return int(self.summary.get_column("accounts").sum()) + self.unassigned

    @property
    def balance_fen(self) -> int:
        return int(self.summary.get_column("balance_fen").sum()) + self.unassigned_balance_fen


@dataclass(frozen=True, slots=True)
class PlanCheck:
    """The verdict on a plan: findings (offer findings summarised), the offer findings in full, the figures."""

    plan_id: str
    as_of: date
    findings: list[Finding]
    figures: BookFigures
    offer_findings: pl.DataFrame = field(default_factory=pl.DataFrame)
    offers: int = 0

    @property
    def blocked(self) -> bool:
        return any(f.blocks for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for f in self.findings if f.severity is s) for s in Severity}


def _date(plan_dates: dict[str, date], phase: Phase) -> date | None:
    return plan_dates.get(phase.value)


def plan_facts(plan: Plan, figures: BookFigures) -> PlanFacts:
    """The plan as the compliance engine's facts (notice periods, coverage, acceleration, actions, evidence)."""
    plan_dates = plan.plan_dates()
    announced = _date(plan_dates, Phase.ANNOUNCEMENT)
    changes: list[PlannedChange] = []
    region = plan.region
    accelerating = {s.id for s in plan.segments if s.default_action is DefaultAction.ACCELERATE}
    for wave in plan.wave_timelines():
        label = None if wave.wave == "all" else wave.wave
        notified = wave.on(Phase.INDIVIDUAL_NOTICES)
        stop = wave.on(Phase.STOP_NEW_DRAWS)
        if stop is not None:
            changes.append(
                PlannedChange(
                    change=NoticeType.STOP_DRAWS,
                    effective_on=stop,
                    announced_on=announced,
                    notified_on=notified,
                    segment=label,
                    region=region,
                    product_class=plan.product_class,
                )
            )
        closes = wave.on(Phase.OPTION_WINDOW_CLOSES)
        if closes is not None and accelerating & set(wave.segments):
            changes.append(
                PlannedChange(
                    change=NoticeType.TERMS_CHANGE,
                    effective_on=closes,
                    announced_on=announced,
                    notified_on=notified,
                    segment=label,
                    region=region,
                    product_class=plan.product_class,
                )
            )
    if plan.closure_fee > 0:
        effective = _date(plan_dates, Phase.STOP_NEW_DRAWS) or _date(plan_dates, Phase.OPTION_WINDOW_OPENS)
        assert effective is not None
        changes.append(
            PlannedChange(
                change=NoticeType.FEE_INCREASE,
                effective_on=effective,
                announced_on=announced,
                notified_on=_date(plan_dates, Phase.INDIVIDUAL_NOTICES),
                region=region,
                product_class=plan.product_class,
            )
        )
    stop_customers = _date(plan_dates, Phase.STOP_NEW_CUSTOMERS)
    if stop_customers is not None:
        changes.append(
            PlannedChange(
                change=NoticeType.PLATFORM_CLOSURE,
                effective_on=stop_customers,
                announced_on=announced,
                region=region,
                product_class=plan.product_class,
            )
        )
    summary = {r["segment"]: r for r in figures.summary.to_dicts()}
    segments = []
    for seg in plan.segments:
        row = summary.get(seg.id, {})
        accounts = int(row.get("accounts") or 0)
        defaulted = int(row.get("defaulted_accounts") or 0)
        segments.append(
            SegmentFacts(
                name=seg.id,
                accounts=accounts,
                balance=from_minor(int(row.get("balance_fen") or 0)),
                accelerates_without_default=seg.default_action is DefaultAction.ACCELERATE and accounts > defaulted,
            )
        )
    channels_close = _date(plan_dates, Phase.REPAYMENT_CHANNELS_CLOSE)
    last_due = max(
        [d for d in (figures.last_maturity, _date(plan_dates, Phase.FINAL_DUE_DATE)) if d is not None],
        default=None,
    )
    return PlanFacts(
        plan_id=plan.id,
        regions=frozenset({region, *figures.regions}),
        product_class=plan.product_class,
        changes=tuple(changes),
        segments=tuple(segments),
        accounts_total=figures.accounts,
        balance_total=from_minor(figures.balance_fen),
        accounts_unassigned=figures.unassigned,
        accounts_in_several_segments=figures.in_several,
        actions=frozenset(plan_actions(plan)),
        evidence=plan.evidence,
        repayment_channels_close_before_balances_cleared=(
            channels_close is not None and last_due is not None and channels_close < last_due
        ),
        closure_fee_charged=plan.closure_fee > 0,
    )


def plan_actions(plan: Plan) -> set[PlanAction]:
    """The steps a plan takes, which process rules need evidence for."""
    dates = plan.plan_dates()
    actions = {PlanAction.CLOSE_PRODUCT}
    if Phase.STOP_NEW_CUSTOMERS.value in dates:
        actions.add(PlanAction.STOP_NEW_CUSTOMERS)
    if any(w.on(Phase.STOP_NEW_DRAWS) is not None for w in plan.wave_timelines()):
        actions.add(PlanAction.STOP_DRAWS)
    if any(o.option_kind.value != "early-settlement" for o in plan.options):
        actions.add(PlanAction.RESTRUCTURING_OFFERS)
    if Phase.COLLECTIONS_HANDOVER.value in dates and CollectorType.AGENCY in plan.lender.collector_types:
        actions.add(PlanAction.AGENCY_HANDOVER)
    if any(s.default_action is DefaultAction.ACCELERATE for s in plan.segments):
        actions.add(PlanAction.ENFORCEMENT)
    if Phase.CHARGE_OFF.value in dates:
        actions.add(PlanAction.WRITE_OFF)
    if Phase.BOOK_SALE.value in dates:
        actions.add(PlanAction.BOOK_SALE)
    return actions


# --- offers ---------------------------------------------------------------------------------------------------------


def offers_facts_frame(offers: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """The offers table in the engine's vocabulary (OfferFacts field names, amounts in yuan as floats)."""
    yuan = [
        ("settlement_fee_fen", "settlement_fee"),
        ("interest_charged_fen", "interest_charged"),
        ("interest_accrued_fen", "interest_accrued_to_settlement"),
        ("amount_repaid_early_fen", "amount_repaid_early"),
        ("interest_to_agreed_end_fen", "interest_to_agreed_end"),
    ]
    return offers.select(
        "offer_id",
        pl.col("account_id"),
        "customer_id",
        "option",
        "offered_on",
        "region",
        pl.lit(plan.product_class.value).alias("product_class"),
        "apr_nominal",
        "apr_effective",
        pl.col("apr_nominal").alias("displayed_apr"),
        "formation_date",
        pl.col("original_maturity").alias("maturity_date"),
        pl.col("offered_on").alias("applied_on"),
        pl.col("offered_on").alias("settlement_date"),
        pl.col("term").alias("term_months"),
        ((pl.col("method") == "interest-only") & (pl.col("option") != "early-settlement")).alias("bullet"),
        "remaining_months",
        *(pl.col(src).cast(pl.Float64) / 100 for src, _ in yuan),
    ).rename({src: dst for src, dst in yuan})


def _offer_facts(row: dict[str, object], plan: Plan) -> OfferFacts:
    """One offer row (from :func:`offers_facts_frame`) as OfferFacts for the row-by-row check."""

    def money(name: str) -> Decimal:
        value = row.get(name)
        return Decimal(str(round(float(value), 2))) if isinstance(value, int | float) else Decimal(0)

    apr = row.get("apr_nominal")
    nominal = Decimal(repr(apr)) if isinstance(apr, float) and apr == apr else Decimal(0)
    effective_raw = row.get("apr_effective")
    effective = (
        Decimal(repr(effective_raw)) if isinstance(effective_raw, float) and effective_raw == effective_raw else None
    )
    return OfferFacts(
        offer_id=str(row["offer_id"]),
        account_id=str(row["account_id"]),
        customer_id=str(row["customer_id"]),
        option=str(row["option"]),
        offered_on=row["offered_on"],
        region=str(row["region"]) if row.get("region") else plan.region,
        product_class=plan.product_class,
        apr_nominal=nominal,
        apr_effective=effective,
        displayed_apr=nominal,
        formation_date=row.get("formation_date"),
        maturity_date=row.get("maturity_date"),
        applied_on=row.get("applied_on"),
        settlement_date=row.get("settlement_date"),
        term_months=int(str(row["term_months"])),
        bullet=bool(row.get("bullet")),
        remaining_months=int(str(row["remaining_months"])) if row.get("remaining_months") is not None else None,
        settlement_fee=money("settlement_fee"),
        interest_charged=money("interest_charged"),
        interest_accrued_to_settlement=money("interest_accrued_to_settlement"),
        amount_repaid_early=money("amount_repaid_early"),
        interest_to_agreed_end=money("interest_to_agreed_end"),
    )


@dataclass(frozen=True, slots=True)
class OfferChecks:
    """What the offer check keeps of one partition's offers (and adds up over partitions).

    ``findings``: every offer finding of the vectorized check; ``worst``: the highest-APR offer of each
    segment and option, in the engine's vocabulary; ``stats``: offers, unaffordable ones and ones ending
    after the wave's final due date per option, segment and wave; ``skipped``: pairs not offered, by reason.
    """

    findings: pl.DataFrame
    worst: pl.DataFrame
    stats: pl.DataFrame
    skipped: pl.DataFrame
    offers: int


STATS_SCHEMA: dict[str, pl.DataType] = {
    "option_id": pl.String(),
    "segment": pl.String(),
    "offers": pl.Int64(),
    "unaffordable": pl.Int64(),
    "late": pl.Int64(),
    "last_maturity": pl.Date(),
}


def offer_stats(offers: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """Per option and segment: offers, unaffordable ones, ones running past their wave's final due date."""
    finals = {sid: w.on(Phase.FINAL_DUE_DATE) for w in plan.wave_timelines() for sid in w.segments}
    final = pl.col("segment").replace_strict(finals, default=None, return_dtype=pl.Date)
    return (
        offers.with_columns(final.alias("_final"))
        .group_by("option_id", "segment", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("offers"),
            (pl.col("affordable") == False).sum().cast(pl.Int64).alias("unaffordable"),  # noqa: E712
            (pl.col("maturity") > pl.col("_final")).fill_null(False).sum().cast(pl.Int64).alias("late"),
            pl.col("maturity").max().alias("last_maturity"),
        )
        .select([pl.col(c).cast(t) for c, t in STATS_SCHEMA.items()])
    )


def quote_facts(
    quote: Quote,
    position: LoanPosition,
    option: OptionSpec,
    plan: Plan,
    *,
    region: str | None = None,
    account_id: str | None = None,
    customer_id: str | None = None,
) -> OfferFacts:
    """One Decimal quote as the engine's OfferFacts (what acceptance is checked on): its own cash flows, the
    APR by IRR it shows, and for a settlement the interest charged against the interest accrued to the day."""
    row = quote_columns(quote, position, option)
    schedule = quote.schedule
    settling = quote.kind.value == "early-settlement"
    payments = tuple((schedule.period_index(i), i.total) for i in schedule.installments)
    apr = quote.apr
    future = position.not_yet_due(quote.as_of)
    maturity = max((i.due_date for i in position.installments), default=None)
    return OfferFacts(
        offer_id=f"{plan.id}:{position.loan_id}:{option.id}",
        account_id=account_id,
        customer_id=customer_id,
        option=option.option_kind,
        offered_on=quote.as_of,
        region=region or plan.region,
        product_class=plan.product_class,
        amount_lent=None if settling else schedule.principal,
        payments=() if settling else payments,
        periods_per_year=schedule.periods_per_year,
        apr_nominal=apr.nominal if apr is not None else (Decimal(0) if settling else None),
        apr_effective=apr.effective if apr is not None else (Decimal(0) if settling else None),
        displayed_apr=apr.nominal if apr is not None else Decimal(0),
        formation_date=position.start_date,
        maturity_date=maturity,
        applied_on=quote.as_of,
        term_months=len(schedule.installments),
        bullet=schedule.method is Method.INTEREST_ONLY and not settling,
        settlement_date=quote.as_of if settling else None,
        interest_charged=from_minor(int(row["interest_charged_fen"])),
        interest_accrued_to_settlement=from_minor(int(row["interest_accrued_fen"])),
        settlement_fee=from_minor(int(row["settlement_fee_fen"])),
        amount_repaid_early=from_minor(int(row["amount_repaid_early_fen"])),
        remaining_months=len(future),
        interest_to_agreed_end=sum(
            (
                max(i.outstanding(Component.INTEREST), Decimal(0)) + max(i.outstanding(Component.FEE), Decimal(0))
                for i in future
            ),
            Decimal("0.00"),
        ),
    )


def check_offers_part(offers: pl.DataFrame, skipped: pl.DataFrame | None, plan: Plan, *, book: RuleBook) -> OfferChecks:
    """The vectorized offer check on one partition's offers, and what the plan check needs of them."""
    facts = offers_facts_frame(offers, plan)
    table = check_offers_frame(facts, plan.lender, book=book)
    worst = (
        facts.with_columns(offers.get_column("segment"), offers.get_column("option_id"))
        .sort("apr_nominal", descending=True, nulls_last=True)
        .group_by("segment", "option_id", maintain_order=True)
        .first()
    )
    gaps = (
        skipped.group_by("option_id", "reason", maintain_order=True).agg(pl.len().cast(pl.Int64).alias("loans"))
        if skipped is not None and skipped.height
        else pl.DataFrame(schema={"option_id": pl.String, "reason": pl.String, "loans": pl.Int64})
    )
    return OfferChecks(table, worst, offer_stats(offers, plan), gaps, offers.height)


def merge_offer_checks(parts: Sequence[OfferChecks]) -> OfferChecks:
    """Per-partition offer checks put together (counts added, the worst offers kept worst)."""
    findings = pl.concat([p.findings for p in parts], how="vertical_relaxed")
    worst = (
        pl.concat([p.worst for p in parts], how="diagonal_relaxed")
        .sort("apr_nominal", descending=True, nulls_last=True)
        .group_by("segment", "option_id", maintain_order=True)
        .first()
    )
    stats = (
        pl.concat([p.stats for p in parts])
        .group_by("option_id", "segment", maintain_order=True)
        .agg(pl.col("offers", "unaffordable", "late").sum(), pl.col("last_maturity").max())
    )
    skipped = (
        pl.concat([p.skipped for p in parts])
        .group_by("option_id", "reason", maintain_order=True)
        .agg(pl.col("loans").sum())
    )
    return OfferChecks(findings, worst, stats, skipped, sum(p.offers for p in parts))


def worst_offer_findings(checks: OfferChecks, plan: Plan, *, book: RuleBook) -> list[Finding]:
    """The row-by-row check (disclosure, dates, bullet terms, prohibitions) of each segment's and option's
    worst offer, less what the vectorized check already found on it."""
    table = checks.findings
    seen = set(zip(table.get_column("rule_id").to_list(), table.get_column("object_id").to_list(), strict=True))
    out: list[Finding] = []
    for row in checks.worst.to_dicts():
        for found in check_offer(_offer_facts(row, plan), plan.lender, book=book):
            if (found.rule_id, found.object_id) not in seen:
                out.append(found)
    return out


def summarise_offer_findings(table: pl.DataFrame) -> list[Finding]:
    """One finding per rule, severity and option: how many offers it concerns and the first as an example.

    An offer id is ``plan:loan:option``; the option is its last part.
    """
    if table.height == 0:
        return []
    grouped = (
        table.with_columns(pl.col("object_id").str.split(":").list.last().alias("option_id"))
        .group_by("rule_id", "severity", "status", "kind", "option_id", maintain_order=True)
        .agg(
            pl.len().alias("count"),
            pl.col("object_id").first(),
            pl.col("value").first(),
            pl.col("parameter").first(),
            pl.col("citation").first(),
            pl.col("message").first(),
            pl.col("on").first(),
        )
    )
    out = []
    for r in grouped.to_dicts():
        count = int(r["count"])
        lead = f"{count} {r['option_id']} offer{'s' if count != 1 else ''}; e.g. " if count > 1 else ""
        out.append(
            Finding(
                rule_id=r["rule_id"],
                severity=Severity(r["severity"]),
                status=RuleStatus(r["status"]),
                kind=RuleKind(r["kind"]),
                object_kind="offer",
                object_id=r["object_id"] if count == 1 else f"{r['option_id']} ({count} offers)",
                on=r["on"],
                value=r["value"],
                parameter=r["parameter"],
                citation=r["citation"],
                message=_prefixed(r["message"], lead),
            )
        )
    return out


def _prefixed(message: str, lead: str) -> str:
    if not lead:
        return message
    head, sep, tail = message.partition(": ")
    return f"{head}{sep}{lead}{tail}" if sep else f"{lead}{message}"


# --- plan integrity -------------------------------------------------------------------------------------------------


def _integrity(
    rule_id: str, severity: Severity, object_kind: str, object_id: str, value: str, parameter: str, text: str
) -> Finding:
    return Finding(
        rule_id=rule_id,
        severity=severity,
        status=RuleStatus.CONFIRMED,
        kind=RuleKind.PROCESS,
        object_kind=object_kind,
        object_id=object_id,
        value=value,
        parameter=parameter,
        citation=PLAN_CITATION,
        message=f"{rule_id}: {text}",
    )


def integrity_findings(plan: Plan, figures: BookFigures, checks: OfferChecks | None) -> list[Finding]:
    """Which segments overlap, offers that run past the final due date or beyond affordability, pairs not offered."""
    out = []
    for r in figures.overlaps.to_dicts():
        out.append(
            _integrity(
                "PLAN-SEGMENTS",
                Severity.INFO,
                "segment",
                f"{r['segment']}&{r['other']}",
                str(r["accounts"]),
                "segment conditions do not overlap",
                f"segments {r['segment']} and {r['other']} both match {r['accounts']} accounts "
                f"(first match gives them to {r['segment']}); narrow one of the conditions",
            )
        )
    if checks is None:
        return out
    finals: dict[str, date] = {}
    for wave in plan.wave_timelines():
        final_due = wave.on(Phase.FINAL_DUE_DATE)
        if final_due is not None:
            finals.update(dict.fromkeys(wave.segments, final_due))
    by_option = checks.stats.group_by("option_id", maintain_order=True).agg(
        pl.col("offers", "unaffordable", "late").sum(), pl.col("last_maturity").max()
    )
    for r in by_option.to_dicts():
        if r["late"]:
            segments = checks.stats.filter(pl.col("option_id") == r["option_id"]).get_column("segment").to_list()
            final = min((finals[s] for s in segments if s in finals), default=None)
            out.append(
                _integrity(
                    "PLAN-FINAL-DUE",
                    Severity.WARN,
                    "plan",
                    f"{plan.id}:{r['option_id']}",
                    str(r["last_maturity"]),
                    "new schedules end by the plan's final due date",
                    f"{r['late']} {r['option_id']} offers run past the final due date {final} "
                    f"(the last to {r['last_maturity']})",
                )
            )
        if r["unaffordable"]:
            out.append(
                _integrity(
                    "PLAN-AFFORDABILITY",
                    Severity.INFO,
                    "plan",
                    f"{plan.id}:{r['option_id']}",
                    str(r["unaffordable"]),
                    "offers within the plan's payment-to-income limits",
                    f"{r['unaffordable']} of {r['offers']} {r['option_id']} offers exceed the customer's "
                    "affordability limit",
                )
            )
    for r in checks.skipped.to_dicts():
        out.append(
            _integrity(
                "PLAN-OFFERS",
                Severity.INFO,
                "plan",
                f"{plan.id}:{r['option_id']}",
                str(r["loans"]),
                "every account of a segment can take its options",
                f"{r['loans']} loans cannot take {r['option_id']}: {r['reason']}",
            )
        )
    return out


def check_plan(
    plan: Plan,
    figures: BookFigures,
    *,
    as_of: date,
    offers: OfferChecks | None = None,
    book: RuleBook | None = None,
) -> PlanCheck:
    """Check a plan (and, when given, its offers' checks) against the rules binding its lender on ``as_of``."""
    rules = book or RuleBook(plan.lender)
    findings = check_plan_facts(plan_facts(plan, figures), plan.lender, as_of=as_of, book=rules)
    findings += integrity_findings(plan, figures, offers)
    table = pl.DataFrame()
    count = 0
    if offers is not None:
        table = offers.findings
        findings += summarise_offer_findings(table)
        findings += worst_offer_findings(offers, plan, book=rules)
        count = offers.offers
    return PlanCheck(
        plan_id=plan.id,
        as_of=as_of,
        findings=sort_findings(findings),
        figures=figures,
        offer_findings=table,
        offers=count,
    )


def blocking_rules(findings: Iterable[Finding]) -> list[str]:
    """The ids of the rules that block, sorted (what a test or a script looks at)."""
    return sorted({f.rule_id for f in findings if f.blocks})


def merge_figures(parts: Sequence[BookFigures]) -> BookFigures:
    """Per-partition figures added up."""
    summary = (
        pl.concat([p.summary for p in parts]).group_by("segment", maintain_order=True).agg(pl.exclude("segment").sum())
    )
    maturities = [p.last_maturity for p in parts if p.last_maturity is not None]
    return BookFigures(
        summary=summary,
        overlaps=merge_overlaps([p.overlaps for p in parts]),
        unassigned=sum(p.unassigned for p in parts),
        in_several=sum(p.in_several for p in parts),
        unassigned_balance_fen=sum(p.unassigned_balance_fen for p in parts),
        regions=frozenset().union(*(p.regions for p in parts)),
        last_maturity=max(maturities) if maturities else None,
    )
