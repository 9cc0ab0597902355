"""Use cases of the assessment (事前评估): read the book from the workspace, compute, write outputs and the report.

Whole-book work runs as per-partition functions plus merges on :func:`runoff.store.executors.run_partitions`
(in this process, or on Dask with a scheduler address). The book is read in two passes: the first gives
every metric's partial sums (and the sample the behaviour clusters are fitted on), the second — which
needs what the first learned (clusters, roll-forward matrices) — the profiles and the watchlist. The
per-partition functions are module-level so Dask workers can import them.

Outputs go to ``data/risk/*.parquet`` (tables a notebook or the web app reads back), the report to
``reports/assessment.html``, alerts to the ledger's ``alerts`` table with their lifecycle, every change in its
audit log (:class:`AlertStore`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import import_module
from pathlib import Path
from typing import Any

import polars as pl

from runoff.app import clock
from runoff.app.alerts import AlertStore
from runoff.errors import InvalidInput, NotFound
from runoff.reports.assessment import AssessmentData, ReportSection, ReportTable, assessment_report, indicator_figure
from runoff.risk.delinquency import (
    DEFAULT_DIMENSIONS,
    SEGMENTS,
    TOTAL,
    book_as_of,
    check_dimensions,
    delinquency_partition,
    merge_delinquency,
    overdue_rates,
    prepare_book,
)
from runoff.risk.profiles import (
    BehaviourClusters,
    customer_features,
    feature_histogram,
    fit_behaviour_clusters,
    merge_profiles,
    merge_samples,
    profile_partition,
    profile_table,
    sample_customers,
)
from runoff.risk.roll_rates import (
    TransitionMatrix,
    concentration,
    concentration_partition,
    flow_rates,
    merge_concentration,
    merge_transitions,
    roll_rates,
    segment_concentration,
    transition_matrix,
    transition_partition,
)
from runoff.risk.vintage import first_payment_default, merge_vintages, vintage_curves, vintage_partition
from runoff.risk.warning import (
    RuleOutcome,
    WarningRules,
    build_indicators,
    default_warning_rules,
    evaluate_rules,
    feature_drift,
    load_warning_rules,
    psi_by_date,
    score_histogram,
)
from runoff.risk.watchlist import RollForward, merge_watchlists, roll_forward_model, watchlist_partition
from runoff.store.executors import run_partitions
from runoff.store.workspace import Workspace

Progress = Callable[[int, int], None]

METRICS: tuple[str, ...] = ("delinquency", "vintages", "transitions", "concentration")
"""The whole-book analytics one pass computes (any subset)."""

RISK_DIR = "risk"
REPORT_FILE = "assessment.html"
TOP_N = 100
MATRIX_MONTHS = 6
CLUSTER_SAMPLE = 50_000
DRIFT_MONTHS = 6
"""The feature-drift baseline: the book's customers this many month ends before the as-of date."""

SECTION_PROVIDERS: tuple[str, ...] = ("runoff.app.models:report_sections",)
"""``module:function`` paths of functions ``(workspace, *, as_of) -> Sequence[ReportSection]`` whose sections
``runoff assess`` adds to the report (PD validation, stress tests); a module not installed is skipped."""


# --- pass one: the analytics ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnalyticsTask:
    """One partition of the first pass, as sent to a worker."""

    root: str
    partition: int
    as_of: date
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...] = METRICS
    top_n: int = TOP_N
    profile_sample: int = 0  # customers kept for the cluster fit (0: no profiles)
    seed: int = 0
    drift_months: int = 0  # behaviour-feature histograms now and this many months before (0: none)


def _scan_if_present(workspace: Workspace, table: str, partition: int) -> pl.LazyFrame | None:
    return workspace.scan(table, partition) if workspace.partition_path(table, partition).is_file() else None


def _scores(workspace: Workspace, partition: int) -> pl.LazyFrame | None:
    """The scores of a partition's customers, if the PD workflow has written a ``scores`` table."""
    if not workspace.has_table("scores"):
        return None
    scores = _scan_if_present(workspace, "scores", partition)
    return scores if scores is not None else workspace.scan("scores")


def _prepare(workspace: Workspace, partition: int, as_of: date, dimensions: tuple[str, ...]) -> Any:
    return prepare_book(
        workspace.scan("performance", partition),
        loans=_scan_if_present(workspace, "loans", partition),
        customers=_scan_if_present(workspace, "customers", partition),
        dimensions=dimensions,
        as_of=as_of,
    )


def analytics_partition_task(task: AnalyticsTask) -> dict[str, Any]:
    """Partial sums of every requested metric for one partition (performance read once)."""
    workspace = Workspace(Path(task.root))
    book = _prepare(workspace, task.partition, task.as_of, task.dimensions)
    out: dict[str, Any] = {}
    if "delinquency" in task.metrics:
        out["delinquency"] = delinquency_partition(book)
    if "vintages" in task.metrics:
        loans = _scan_if_present(workspace, "loans", task.partition)
        if loans is None:
            raise NotFound(
                f"table `loans` partition {task.partition} is not in {workspace.data_dir}; vintage curves need "
                "each loan's vintage and principal",
                code="risk.no_loans",
            )
        out["vintages"] = vintage_partition(book, loans)
    if "transitions" in task.metrics:
        out["transitions"] = transition_partition(book)
    if "concentration" in task.metrics:
        out["concentration"] = concentration_partition(book, top_n=task.top_n)
    if task.profile_sample or task.drift_months:
        customers = _scan_if_present(workspace, "customers", task.partition)
        accounts = _scan_if_present(workspace, "accounts", task.partition)
        features = customer_features(
            book, customers=customers, accounts=accounts, scores=_scores(workspace, task.partition)
        )
        if task.profile_sample:
            out["sample"] = sample_customers(features, size=task.profile_sample, seed=task.seed)
        if task.drift_months:
            before = customer_features(
                book.at(months_before(task.as_of, task.drift_months)), customers=customers, accounts=accounts
            )
            out["feature_histogram"] = pl.concat(
                [feature_histogram(before, period="baseline"), feature_histogram(features, period="current")]
            )
    return out


def months_before(as_of: date, months: int) -> date:
    """The month end ``months`` months before ``as_of``'s month."""
    index = as_of.year * 12 + as_of.month - 1 - months
    year, month = divmod(index, 12)
    first_next = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    return date.fromordinal(first_next.toordinal() - 1)


@dataclass(frozen=True, slots=True)
class BookAnalytics:
    """The book's merged sums (counts and fen) per metric; every ratio is computed from these."""

    as_of: date
    dimensions: tuple[str, ...]
    delinquency_sums: pl.DataFrame | None = None
    vintage_sums: dict[str, pl.DataFrame] | None = None
    transition_counts: pl.DataFrame | None = None
    concentration_sums: dict[str, pl.DataFrame] | None = None
    profile_sample: pl.DataFrame | None = None
    feature_histogram: pl.DataFrame | None = None

    def feature_drift(self) -> pl.DataFrame | None:
        """PSI of each behaviour feature against the baseline month (None when the pass did not look)."""
        if self.feature_histogram is None:
            return None
        return feature_drift(self.feature_histogram, as_of=self.as_of)

    def overdue_rates(self) -> pl.DataFrame:
        return overdue_rates(_needed(self.delinquency_sums, "delinquency"))

    def vintage_curves(self) -> pl.DataFrame:
        return vintage_curves(_needed(self.vintage_sums, "vintages"), as_of=self.as_of)

    def first_payment_default(self) -> pl.DataFrame:
        return first_payment_default(_needed(self.vintage_sums, "vintages"), as_of=self.as_of)

    def roll_rates(self) -> pl.DataFrame:
        return roll_rates(_needed(self.transition_counts, "transitions"))

    def flow_rates(self) -> pl.DataFrame:
        return flow_rates(_needed(self.transition_counts, "transitions"))

    def recent_months(self, months: int = MATRIX_MONTHS) -> tuple[date, ...]:
        counts = _needed(self.transition_counts, "transitions")
        return tuple(sorted(counts.get_column("month_end").unique().to_list())[-months:])

    def matrix(
        self, *, dimension: str = TOTAL, segment: str = "all", weight: str = "balance", states: str = "bucket"
    ) -> TransitionMatrix:
        """The transition matrix pooled over the last :data:`MATRIX_MONTHS` months."""
        counts = _needed(self.transition_counts, "transitions")
        return transition_matrix(
            counts, dimension=dimension, segment=segment, months=self.recent_months(), weight=weight, states=states
        )

    def concentration(self) -> pl.DataFrame:
        return concentration(_needed(self.concentration_sums, "concentration"))

    def segment_concentration(self) -> pl.DataFrame:
        return segment_concentration(self.overdue_rates(), as_of=self.as_of)

    def top_customers(self) -> pl.DataFrame:
        top: pl.DataFrame = _needed(self.concentration_sums, "concentration")["top"]
        return top.filter(pl.col("month_end") == self.as_of).drop("month_end")


def _needed(value: Any, metric: str) -> Any:
    if value is None:
        raise InvalidInput(f"`metrics`: {metric} was not computed in this pass; include it in `metrics`")
    return value


def merge_analytics(
    parts: Sequence[dict[str, Any]],
    *,
    as_of: date,
    dimensions: tuple[str, ...],
    top_n: int = TOP_N,
    profile_sample: int = 0,
) -> BookAnalytics:
    """Add the partitions' partial sums, metric by metric."""

    def of(key: str) -> list[Any]:
        return [p[key] for p in parts if key in p]

    present = set().union(*(p.keys() for p in parts)) if parts else set()
    return BookAnalytics(
        as_of=as_of,
        dimensions=dimensions,
        delinquency_sums=merge_delinquency(of("delinquency")) if "delinquency" in present else None,
        vintage_sums=merge_vintages(of("vintages")) if "vintages" in present else None,
        transition_counts=merge_transitions(of("transitions")) if "transitions" in present else None,
        concentration_sums=merge_concentration(of("concentration"), top_n=top_n)
        if "concentration" in present
        else None,
        profile_sample=merge_samples(of("sample"), size=profile_sample) if "sample" in present else None,
        feature_histogram=pl.concat(of("feature_histogram")) if "feature_histogram" in present else None,
    )


@dataclass(frozen=True, slots=True)
class _Merger:
    """A picklable merge (Dask-friendly) with the pass's parameters bound."""

    as_of: date
    dimensions: tuple[str, ...]
    top_n: int
    profile_sample: int = 0

    def __call__(self, parts: Sequence[dict[str, Any]]) -> BookAnalytics:
        return merge_analytics(
            parts, as_of=self.as_of, dimensions=self.dimensions, top_n=self.top_n, profile_sample=self.profile_sample
        )


def performance_partitions(workspace: Workspace) -> list[int]:
    """The partitions of the performance table; a clear error when the book is not there."""
    parts = workspace.partitions("performance")
    if not parts:
        raise NotFound(
            f"table `performance` is not in {workspace.data_dir}; run `runoff generate` or `runoff import` first",
            code="risk.no_book",
        )
    return parts


def resolve_as_of(workspace: Workspace, as_of: date | None) -> date:
    """The month end the assessment stands on: the last snapshot on or before ``as_of`` (default: the last)."""
    performance_partitions(workspace)
    return book_as_of(workspace.scan("performance"), as_of)


def book_analytics(
    workspace: Workspace,
    *,
    as_of: date | None = None,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    metrics: Sequence[str] = METRICS,
    scheduler: str | None = None,
    progress: Progress | None = None,
    top_n: int = TOP_N,
    profile_sample: int = 0,
    seed: int = 0,
    drift_months: int = 0,
) -> BookAnalytics:
    """One pass over the book: every requested metric's sums, merged across partitions."""
    dims = check_dimensions(dimensions)
    for m in metrics:
        if m not in METRICS:
            raise InvalidInput(
                f"`metrics`: {m!r} is not a metric; expected any of {', '.join(METRICS)}", field="metrics"
            )
    when = resolve_as_of(workspace, as_of)
    root = str(workspace.root.resolve())
    tasks = [
        AnalyticsTask(root, p, when, dims, tuple(metrics), top_n, profile_sample, seed, drift_months)
        for p in performance_partitions(workspace)
    ]
    merger = _Merger(when, dims, top_n, profile_sample)
    return run_partitions(analytics_partition_task, tasks, merger, scheduler=scheduler, progress=progress)


def segment_names() -> list[str]:
    """The segment dimensions a user can pick (``--by``)."""
    return list(SEGMENTS)


# --- pass two: profiles with clusters, and the watchlist -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowUpTask:
    """One partition of the second pass: what needs the first pass's results."""

    root: str
    partition: int
    as_of: date
    dimensions: tuple[str, ...]
    clusters: BehaviourClusters | None = None
    profiles: bool = False
    roll_forward: RollForward | None = None
    top_n: int = TOP_N
    min_probability: float = 0.0


def follow_up_partition_task(task: FollowUpTask) -> dict[str, Any]:
    workspace = Workspace(Path(task.root))
    book = _prepare(workspace, task.partition, task.as_of, task.dimensions)
    out: dict[str, Any] = {}
    if task.profiles:
        features = customer_features(
            book,
            customers=_scan_if_present(workspace, "customers", task.partition),
            accounts=_scan_if_present(workspace, "accounts", task.partition),
            scores=_scores(workspace, task.partition),
        )
        out["profiles"] = profile_partition(features, task.clusters)
    if task.roll_forward is not None:
        out["watchlist"] = watchlist_partition(
            book, task.roll_forward, top_n=task.top_n, min_probability=task.min_probability
        )
    return out


@dataclass(frozen=True, slots=True)
class _FollowUpMerger:
    top_n: int

    def __call__(self, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        profiles = [p["profiles"] for p in parts if "profiles" in p]
        if profiles:
            out["profiles"] = merge_profiles(profiles)
        lists = [p["watchlist"] for p in parts if "watchlist" in p]
        if lists:
            out["watchlist"] = merge_watchlists(lists, top_n=self.top_n)
        return out


def _follow_up(
    workspace: Workspace,
    analytics: BookAnalytics,
    *,
    clusters: BehaviourClusters | None,
    profiles: bool,
    roll_forward: RollForward | None,
    rules: WarningRules,
    scheduler: str | None,
    progress: Progress | None,
) -> dict[str, Any]:
    root = str(workspace.root.resolve())
    w = rules.watchlist
    tasks = [
        FollowUpTask(
            root, p, analytics.as_of, analytics.dimensions, clusters, profiles, roll_forward, w.top_n, w.min_probability
        )
        for p in performance_partitions(workspace)
    ]
    return run_partitions(
        follow_up_partition_task, tasks, _FollowUpMerger(w.top_n), scheduler=scheduler, progress=progress
    )


# --- alerts ------------------------------------------------------------------------------------------------------


def read_rules(path: Path | None) -> WarningRules:
    """The rule file at ``path`` (the defaults without one)."""
    if path is None:
        return default_warning_rules()
    if not path.is_file():
        raise NotFound(
            f"`--rules`: {path} does not exist; expected a YAML rule file such as examples/warning-rules.yaml"
        )
    return load_warning_rules(path.read_text(encoding="utf-8"), source=str(path))


def _score_psi(workspace: Workspace) -> pl.DataFrame | None:
    if not workspace.has_table("scores"):
        return None
    names = workspace.scan("scores").collect_schema().names()
    when = next((c for c in ("as_of", "scored_on", "month_end") if c in names), None)
    if when is None or "pd" not in names:
        return None
    return psi_by_date(score_histogram(workspace.scan("scores"), date_column=when))


@dataclass(frozen=True, slots=True)
class WarningResult:
    as_of: date
    indicators: pl.DataFrame
    outcomes: list[RuleOutcome]
    raised: list[str]
    updated: list[str]
    open_alerts: pl.DataFrame
    watchlist: dict[str, pl.DataFrame]
    roll_forward: RollForward | None

    def as_dict(self) -> dict[str, Any]:
        latest = (
            self.indicators.filter((pl.col("dimension") == TOTAL) & (pl.col("month_end") <= self.as_of))
            .sort("month_end")
            .group_by("indicator", maintain_order=True)
            .agg(pl.col("month_end").last(), pl.col("value").last())
            .sort("indicator")
        )
        top = self.watchlist.get("top", pl.DataFrame())
        return {
            "as_of": self.as_of,
            "indicators": latest.to_dicts(),
            "rules": [o.as_dict() for o in self.outcomes],
            "raised": self.raised,
            "updated": self.updated,
            "open_alerts": self.open_alerts.to_dicts(),
            "watchlist": {
                "dimension": self.roll_forward.dimension if self.roll_forward else None,
                "months": list(self.roll_forward.months) if self.roll_forward else [],
                "top": top.to_dicts(),
                "summary": self.watchlist.get("summary", pl.DataFrame()).to_dicts(),
            },
        }


def _watch_dimension(rules: WarningRules, dims: tuple[str, ...], rates: pl.DataFrame | None) -> str:
    """The watchlist's dimension, or the whole book when the book does not carry it (all ``unknown``)."""
    dim = rules.watchlist.dimension
    if dim == TOTAL or dim not in dims or rates is None:
        return TOTAL
    segs = set(rates.filter(pl.col("dimension") == dim).get_column("segment").to_list())
    return TOTAL if segs <= {"unknown"} else dim


def _warning(
    workspace: Workspace,
    analytics: BookAnalytics,
    rules: WarningRules,
    *,
    rates: pl.DataFrame,
    rolls: pl.DataFrame,
    now: datetime,
    actor: str,
    store: AlertStore,
) -> tuple[pl.DataFrame, list[RuleOutcome], list[str], list[str], RollForward]:
    indicators = build_indicators(
        rates=rates,
        rolls=rolls,
        fpd=analytics.first_payment_default(),
        concentration=analytics.concentration(),
        score_psi=_score_psi(workspace),
        feature_psi=analytics.feature_drift(),
    )
    alerts, outcomes = evaluate_rules(indicators, rules, as_of=analytics.as_of)
    _, raised, updated = store.record(alerts, at=now, actor=actor)
    model = roll_forward_model(
        _needed(analytics.transition_counts, "transitions"),
        dimension=_watch_dimension(rules, analytics.dimensions, rates),
        months=rules.watchlist.months,
        horizon=rules.watchlist.horizon,
    )
    return indicators, outcomes, raised, updated, model


def warn(
    workspace: Workspace,
    *,
    as_of: date | None,
    rules: WarningRules | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    actor: str = "runoff warn",
    alerts: AlertStore | None = None,
) -> WarningResult:
    """``runoff warn``: indicators up to ``as_of``, the rules evaluated, alerts recorded (in the workspace's ledger
    unless ``alerts`` is given), the watchlist built."""
    rules = rules or default_warning_rules()
    store = alerts or AlertStore(workspace)
    dims = tuple(d for d in SEGMENTS if d in rules.segments())
    analytics = book_analytics(
        workspace, as_of=as_of, dimensions=dims, scheduler=scheduler, progress=progress, drift_months=DRIFT_MONTHS
    )
    rates, rolls = analytics.overdue_rates(), analytics.roll_rates()
    indicators, outcomes, raised, updated, model = _warning(
        workspace, analytics, rules, rates=rates, rolls=rolls, now=now or clock.now(), actor=actor, store=store
    )
    follow = _follow_up(
        workspace, analytics, clusters=None, profiles=False, roll_forward=model, rules=rules, scheduler=scheduler,
        progress=None,
    )  # fmt: skip
    watch = follow.get("watchlist", {})
    _write(workspace, {"indicators": indicators, **_watch_frames(watch), "roll_forward": model.table})
    return WarningResult(analytics.as_of, indicators, outcomes, raised, updated, store.open(), watch, model)


def _watch_frames(watch: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {f"watchlist{'' if k == 'top' else '_' + k}": v for k, v in watch.items() if v.height}


# --- outputs -----------------------------------------------------------------------------------------------------


def _write(workspace: Workspace, frames: dict[str, pl.DataFrame]) -> dict[str, str]:
    return {name: str(workspace.write_frame(f"{RISK_DIR}/{name}.parquet", frame)) for name, frame in frames.items()}


def read_output(workspace: Workspace, name: str) -> pl.DataFrame:
    """A table the assessment wrote (``data/risk/<name>.parquet``)."""
    path = workspace.data_dir / RISK_DIR / f"{name}.parquet"
    if not path.is_file():
        raise NotFound(f"{path} does not exist; run `runoff assess` first", code="risk.no_output")
    return pl.read_parquet(path)


@dataclass
class AssessmentResult:
    as_of: date
    report: Path
    outputs: dict[str, str]
    headline: dict[str, Any]
    warning: WarningResult
    flagged_segments: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "report": str(self.report),
            "outputs": self.outputs,
            "headline": self.headline,
            "flagged_segments": self.flagged_segments,
            "alerts": {
                "raised": self.warning.raised,
                "updated": self.warning.updated,
                "open": len(self.warning.open_alerts),
            },
            "watchlist_accounts": len(self.warning.watchlist.get("top", [])),
        }


def provided_sections(workspace: Workspace, *, as_of: date) -> list[ReportSection]:
    """Sections from :data:`SECTION_PROVIDERS` (modules not installed are skipped)."""
    out: list[ReportSection] = []
    for spec in SECTION_PROVIDERS:
        module_name, _, function = spec.partition(":")
        try:
            module = import_module(module_name)
        except ModuleNotFoundError:
            continue
        provider = getattr(module, function, None)
        if provider is not None:
            out += list(provider(workspace, as_of=as_of))
    return out


def warning_sections(result: WarningResult) -> list[ReportSection]:
    """The report's early-warning slots: open alerts with the indicators, and the watchlist."""
    alert_cols = ["alert_id", "severity", "status", "indicator", "segment", "value", "threshold", "direction",
                  "first_seen_on", "last_seen_on", "message", "acknowledged_by"]  # fmt: skip
    alerts = result.open_alerts
    outcomes = pl.DataFrame([o.as_dict() for o in result.outcomes]) if result.outcomes else pl.DataFrame()
    alert_tables = [ReportTable(alerts.select([c for c in alert_cols if c in alerts.columns]), "open alerts")]
    if outcomes.height:
        alert_tables.append(ReportTable(outcomes, f"every rule at {result.as_of.isoformat()}"))
    figures = (
        indicator_figure(result.indicators, ["m1plus_balance_rate", "m2plus_balance_rate", "m4plus_balance_rate"],
                         title="逾期指标 · Delinquency indicators"),
        indicator_figure(result.indicators, ["roll_current_to_m1", "m1_cure_rate", "collection_rate", "fpd_rate"],
                         title="迁徙与催收 · Rolls and collections"),
    )  # fmt: skip
    notes = (f"{len(alerts)} open alert(s); raised this run: {', '.join(result.raised) or 'none'}.",)
    out = [ReportSection("alerts", "风险预警", "Open alerts", figures=figures, tables=tuple(alert_tables), notes=notes)]
    top = result.watchlist.get("top")
    if top is not None and top.height:
        model = result.roll_forward
        how = (
            f"Each open loan rolled forward with its {model.dimension} matrix pooled over "
            f"{model.months[0].isoformat()} – {model.months[-1].isoformat()}; write-off within {model.horizon} months."
            if model and model.months
            else ""
        )
        tables = [ReportTable(top, "accounts most likely to roll next month", 50)]
        summary = result.watchlist.get("summary")
        if summary is not None and summary.height:
            tables.append(ReportTable(summary, "expected roll and write-off by state"))
        out.append(
            ReportSection("watchlist", "预警名单", "Watchlist", tables=tuple(tables), notes=(how,) if how else ())
        )
    return out


def assess_book(
    workspace: Workspace,
    *,
    as_of: date | None = None,
    rules: WarningRules | None = None,
    clusters: int = 5,
    seed: int = 0,
    sections: Sequence[ReportSection] = (),
    scheduler: str | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    actor: str = "runoff assess",
    alerts: AlertStore | None = None,
) -> AssessmentResult:
    """``runoff assess``: the whole assessment — analytics, profiles, early warning — written out with the report
    (alerts in the workspace's ledger unless ``alerts`` is given)."""
    rules = rules or default_warning_rules()
    store = alerts or AlertStore(workspace)
    now = now or clock.now()
    dims = tuple(dict.fromkeys([*DEFAULT_DIMENSIONS, *(d for d in SEGMENTS if d in rules.segments())]))
    analytics = book_analytics(
        workspace, as_of=as_of, dimensions=dims, scheduler=scheduler, progress=progress,
        profile_sample=CLUSTER_SAMPLE, seed=seed, drift_months=DRIFT_MONTHS,
    )  # fmt: skip
    rates, rolls = analytics.overdue_rates(), analytics.roll_rates()
    curves, flows, conc = analytics.vintage_curves(), analytics.flow_rates(), analytics.concentration()
    seg_conc = analytics.segment_concentration()
    fitted = None
    sample = analytics.profile_sample
    if sample is not None and sample.height >= 2:
        fitted = fit_behaviour_clusters(sample, n_clusters=clusters, seed=seed)
    indicators, outcomes, raised, updated, model = _warning(
        workspace, analytics, rules, rates=rates, rolls=rolls, now=now, actor=actor, store=store
    )
    follow = _follow_up(
        workspace, analytics, clusters=fitted, profiles=True, roll_forward=model, rules=rules, scheduler=scheduler,
        progress=progress,
    )  # fmt: skip
    profiles = profile_table(follow["profiles"]) if "profiles" in follow else None
    watch = follow.get("watchlist", {})
    warning = WarningResult(analytics.as_of, indicators, outcomes, raised, updated, store.open(), watch, model)
    frames: dict[str, pl.DataFrame] = {
        "delinquency": rates,
        "vintages": curves,
        "first_payment_default": analytics.first_payment_default(),
        "transitions": _needed(analytics.transition_counts, "transitions"),
        "roll_rates": rolls,
        "flow_rates": flows,
        "concentration": conc,
        "segment_concentration": seg_conc,
        "top_customers": analytics.top_customers(),
        "indicators": indicators,
        "roll_forward": model.table,
        **_watch_frames(watch),
    }
    if profiles is not None:
        frames["profiles"] = profiles
    if fitted is not None:
        frames["clusters"] = fitted.centers
    outputs = _write(workspace, frames)
    data = AssessmentData(
        as_of=analytics.as_of, rates=rates, vintages=curves, matrix=analytics.matrix(),
        matrix_months=analytics.recent_months(), rolls=rolls, flows=flows, concentration=conc,
        segment_concentration=seg_conc, top_customers=analytics.top_customers(), profiles=profiles,
        clusters=fitted.centers if fitted is not None else None,
        book={"partitions": len(performance_partitions(workspace)), "workspace": str(workspace.root.resolve())},
    )  # fmt: skip
    html = assessment_report(
        data,
        sections=[*warning_sections(warning), *provided_sections(workspace, as_of=analytics.as_of), *sections],
        generated_at=now,
    )
    report_dir = workspace.root / "reports"
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / REPORT_FILE
    tmp = report.with_name(f".{report.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(report)
    total = rates.filter((pl.col("dimension") == TOTAL) & (pl.col("month_end") == analytics.as_of))
    headline = total.select(
        "open_loans", "open_balance_fen", "m1plus_count_rate", "m1plus_balance_rate", "m2plus_balance_rate",
        "m3plus_balance_rate", "m4plus_balance_rate",
    ).to_dicts()[0] if total.height else {}  # fmt: skip
    flagged = (
        profiles.filter(pl.col("flag"))
        .select("dimension", "segment", "customers", "m1plus_balance_rate", "lift")
        .to_dicts()
        if profiles is not None
        else []
    )
    return AssessmentResult(analytics.as_of, report, outputs, headline, warning, flagged)
