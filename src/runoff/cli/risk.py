"""`runoff assess`, `runoff warn`, `runoff risk delinquency|vintages|roll-rates`, `runoff alerts`: assess the book."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from runoff.app import assess, clock
from runoff.app.alerts import AlertStore
from runoff.cli.output import JsonOption, emit, err_console
from runoff.errors import InvalidInput
from runoff.risk.delinquency import SEGMENTS, TOTAL
from runoff.store.executors import scheduler_address
from runoff.store.workspace import Workspace, locate_workspace

WorkspaceOption = typer.Option(
    None, "--workspace", "-w", help="Workspace folder (default: RUNOFF_WORKSPACE, else the current folder)."
)
SchedulerOption = typer.Option(
    None, "--scheduler", help="Dask scheduler address (default: RUNOFF_DASK_SCHEDULER; none runs in-process)."
)
AsOfOption = typer.Option(
    None, "--as-of", help="Date (YYYY-MM-DD): the last month end on or before it (default: the last)."
)
RulesOption = typer.Option(None, "--rules", help="Early-warning rules (YAML); default: the built-in set.")
ByOption = typer.Option(
    None, "--by", help=f"Segment(s), comma-separated: {', '.join(SEGMENTS)} (default: the whole book)."
)


def _date(value: str | None, *, option: str = "--as-of") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"`{option}`: {value!r} is not a date; expected YYYY-MM-DD such as 2025-06-30", field=option.lstrip("-")
        ) from None


def _by(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    dims = tuple(v.strip() for v in value.split(",") if v.strip())
    for d in dims:
        if d not in SEGMENTS:
            raise InvalidInput(f"`--by`: {d!r} is not a segment; expected one of {', '.join(SEGMENTS)}", field="by")
    return dims


def _workspace(path: Path | None) -> Workspace:
    return Workspace.open(locate_workspace(path))


def _pct(x: Any) -> str:
    return "–" if x is None else f"{x * 100:.2f}%"


def _yuan(fen: Any) -> str:
    return "–" if fen is None else f"{fen / 100:,.2f}"


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dicts()


def _table(title: str, frame: pl.DataFrame, columns: dict[str, str]) -> Table:
    """A Rich table of ``frame``'s ``columns`` (name → header), rates as %, ``*_fen`` as yuan."""
    table = Table(title=title)
    for header in columns.values():
        table.add_column(header, justify="right")
    for row in frame.iter_rows(named=True):
        cells = []
        for col in columns:
            v = row.get(col)
            if col.endswith("_fen"):
                cells.append(_yuan(v))
            elif col.endswith(("_rate", "_share")) or col in ("p_roll", "probability"):
                cells.append(_pct(v))
            elif isinstance(v, int):
                cells.append(f"{v:,}")
            elif isinstance(v, float):
                cells.append(f"{v:.4g}")
            else:
                cells.append("" if v is None else str(v))
        table.add_row(*cells)
    return table


def register(app: typer.Typer) -> None:
    """Add ``assess``, ``warn``, ``risk`` and ``alerts`` to ``app``."""

    @app.command("assess")
    def assess_command(
        as_of: str | None = AsOfOption,
        rules: Path | None = RulesOption,
        clusters: int = typer.Option(5, "--clusters", help="Behaviour clusters in the customer profiles."),
        seed: int = typer.Option(0, "--seed", help="Seed of the cluster sample and KMeans."),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Assess the book: delinquency, vintages, roll rates, concentration, profiles, early warning, and
        reports/assessment.html."""
        workspace = _workspace(workspace_dir)
        parsed_rules = assess.read_rules(rules)
        if not as_json:
            err_console.print("assessing the book (two passes over the partitions)…")
        result = assess.assess_book(
            workspace,
            as_of=_date(as_of),
            rules=parsed_rules,
            clusters=clusters,
            seed=seed,
            scheduler=scheduler_address(scheduler),
            now=clock.now(),
        )

        def render(c: Console) -> None:
            h = result.headline
            c.print(
                f"as of {result.as_of.isoformat()}: {h.get('open_loans', 0):,} open loans, {_yuan(h.get('open_balance_fen'))} yuan"
            )
            c.print(
                f"M1+ {_pct(h.get('m1plus_balance_rate'))}  M2+ {_pct(h.get('m2plus_balance_rate'))}  "
                f"M3+ {_pct(h.get('m3plus_balance_rate'))}  M4+ {_pct(h.get('m4plus_balance_rate'))} (of balance)"
            )
            if result.flagged_segments:
                c.print(
                    _table(
                        "Segments to look at first (lift ≥ 1.5)",
                        pl.DataFrame(result.flagged_segments),
                        {"dimension": "dimension", "segment": "segment", "customers": "customers",
                         "m1plus_balance_rate": "M1+ of balance", "lift": "lift"},
                    )
                )  # fmt: skip
            w = result.warning
            c.print(f"alerts: {len(w.raised)} raised, {len(w.updated)} still firing, {len(w.open_alerts)} open")
            c.print(f"report: {result.report}")
            c.print(f"tables: {workspace.data_dir / assess.RISK_DIR}")

        emit(result.as_dict(), as_json=as_json, render=render)

    @app.command("warn")
    def warn_command(
        as_of: str = typer.Option(..., "--as-of", help="Date (YYYY-MM-DD) the rules are evaluated at."),
        rules: Path | None = RulesOption,
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Early warning: indicators, threshold rules and change detection, alerts, and the roll-forward watchlist."""
        workspace = _workspace(workspace_dir)
        result = assess.warn(
            workspace,
            as_of=_date(as_of),
            rules=assess.read_rules(rules),
            scheduler=scheduler_address(scheduler),
            now=clock.now(),
        )

        def render(c: Console) -> None:
            outcomes = pl.DataFrame([o.as_dict() for o in result.outcomes]) if result.outcomes else pl.DataFrame()
            if outcomes.height:
                c.print(
                    _table(
                        f"Rules at {result.as_of.isoformat()}",
                        outcomes,
                        {"rule_id": "rule", "indicator": "indicator", "segment": "segment", "status": "status",
                         "value": "value", "threshold": "threshold", "observed_on": "seen on"},
                    )
                )  # fmt: skip
            c.print(f"raised {', '.join(result.raised) or 'none'}; still firing {', '.join(result.updated) or 'none'}")
            if result.open_alerts.height:
                c.print(
                    _table(
                        "Open alerts", result.open_alerts,
                        {"alert_id": "alert", "severity": "severity", "status": "status", "message": "message"},
                    )
                )  # fmt: skip
            top = result.watchlist.get("top")
            if top is not None and top.height:
                c.print(
                    _table(
                        "Watchlist (next-month roll-forward)", top.head(20),
                        {"rank": "#", "customer_id": "customer", "worst_state": "state", "loans": "loans",
                         "balance_fen": "balance", "p_roll": "P(roll)", "expected_roll_fen": "expected roll"},
                    )
                )  # fmt: skip

        emit(result.as_dict(), as_json=as_json, render=render)

    risk = typer.Typer(help="Delinquency analytics: overdue rates, vintage curves, roll rates.", no_args_is_help=True)
    app.add_typer(risk, name="risk")

    @risk.command("delinquency")
    def delinquency_command(
        by: str | None = ByOption,
        as_of: str | None = AsOfOption,
        history: bool = typer.Option(False, "--history", help="Every month end, not only the as-of one."),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Overdue rates by count and balance, per bucket and M1+/M2+/M3+/M4+, for the book or by segment."""
        dims = _by(by)
        analytics = assess.book_analytics(
            _workspace(workspace_dir), as_of=_date(as_of), dimensions=dims, metrics=("delinquency",),
            scheduler=scheduler_address(scheduler),
        )  # fmt: skip
        rates = analytics.overdue_rates()
        shown = rates if history else rates.filter(pl.col("month_end") == analytics.as_of)
        if dims:
            shown = shown.filter(pl.col("dimension") != TOTAL) if not history else shown
        cols = {"dimension": "dimension", "segment": "segment", "month_end": "month end", "open_loans": "open loans",
                "open_balance_fen": "balance", "m1plus_count_rate": "M1+ (count)", "m1plus_balance_rate": "M1+",
                "m2plus_balance_rate": "M2+", "m3plus_balance_rate": "M3+", "m4plus_balance_rate": "M4+"}  # fmt: skip
        emit(
            {"as_of": analytics.as_of, "dimensions": list(dims), "rows": _records(shown)},
            as_json=as_json,
            render=lambda c: c.print(
                _table(f"Overdue rates (of balance unless marked) as of {analytics.as_of}", shown, cols)
            ),
        )

    @risk.command("vintages")
    def vintages_command(
        as_of: str | None = AsOfOption,
        metric: str = typer.Option(
            "m1plus_rate",
            "--metric",
            help="m1plus_rate, m2plus_rate, m3plus_rate, ever_m1plus_rate, ever_m3plus_rate or cum_charge_off_rate.",
        ),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Vintage curves: M1+, M3+ and cumulative charge-off by months on book, per origination month."""
        allowed = (
            "m1plus_rate",
            "m2plus_rate",
            "m3plus_rate",
            "ever_m1plus_rate",
            "ever_m3plus_rate",
            "cum_charge_off_rate",
        )
        if metric not in allowed:
            raise InvalidInput(
                f"`--metric`: {metric!r} is not allowed; expected one of {', '.join(allowed)}", field="metric"
            )
        analytics = assess.book_analytics(
            _workspace(workspace_dir), as_of=_date(as_of), dimensions=(), metrics=("vintages",),
            scheduler=scheduler_address(scheduler),
        )  # fmt: skip
        curves = analytics.vintage_curves()

        def render(c: Console) -> None:
            wide = (
                curves.filter(pl.col("observed"))
                .pivot(on="mob", index="vintage", values=metric, sort_columns=False)
                .sort("vintage")
            )
            mobs = [m for m in wide.columns if m != "vintage"][:13]
            table = Table(title=f"{metric} by MOB (rows: vintage)")
            table.add_column("vintage")
            for m in mobs:
                table.add_column(m, justify="right")
            for row in wide.iter_rows(named=True):
                table.add_row(row["vintage"], *[_pct(row[m]) for m in mobs])
            c.print(table)

        emit({"as_of": analytics.as_of, "metric": metric, "rows": _records(curves)}, as_json=as_json, render=render)

    @risk.command("roll-rates")
    def roll_rates_command(
        by: str | None = ByOption,
        as_of: str | None = AsOfOption,
        weight: str = typer.Option("balance", "--weight", help="balance or loans."),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Transition matrices (pooled over the last six months) and roll rates, for the book or by segment."""
        dims = _by(by)
        analytics = assess.book_analytics(
            _workspace(workspace_dir), as_of=_date(as_of), dimensions=dims, metrics=("transitions",),
            scheduler=scheduler_address(scheduler),
        )  # fmt: skip
        counts = analytics.transition_counts
        assert counts is not None
        pairs = [(TOTAL, "all")] + [
            (d, s) for d in dims for s in counts.filter(pl.col("dimension") == d).get_column("segment").unique().sort()
        ]
        matrices = {
            f"{d}={s}" if d != TOTAL else "all": analytics.matrix(dimension=d, segment=s, weight=weight)
            for d, s in pairs
        }
        rolls = analytics.roll_rates()
        last = analytics.recent_months()[-1]
        latest = rolls.filter(pl.col("month_end") == last)

        def render(c: Console) -> None:
            for name, m in matrices.items():
                table = Table(
                    title=f"Transition matrix ({weight}) {name}, {analytics.recent_months()[0]} – {analytics.recent_months()[-1]}"
                )
                table.add_column("from \\ to")
                for t in m.to_states:
                    table.add_column(t, justify="right")
                table.add_column("n", justify="right")
                for i, f in enumerate(m.from_states):
                    table.add_row(
                        f, *[_pct(p) if p == p else "–" for p in m.probabilities[i]], f"{m.row_totals[i]:,.0f}"
                    )
                c.print(table)
            c.print(
                _table(
                    f"Roll rates from {last.isoformat()}", latest,
                    {"dimension": "dimension", "segment": "segment", "from_bucket": "from", "from_loans": "loans",
                     "roll_forward_balance_rate": "roll forward", "cure_balance_rate": "cure",
                     "prepaid_balance_rate": "prepaid", "collection_rate": "collected / overdue"},
                )
            )  # fmt: skip

        emit(
            {
                "as_of": analytics.as_of,
                "weight": weight,
                "months": list(analytics.recent_months()),
                "matrices": {
                    name: {"states_from": list(m.from_states), "states_to": list(m.to_states),
                           "counts": m.counts.tolist(), "probabilities": [[None if p != p else p for p in row] for row in m.probabilities.tolist()]}
                    for name, m in matrices.items()
                },
                "roll_rates": _records(latest),
            },
            as_json=as_json,
            render=render,
        )  # fmt: skip

    alerts = typer.Typer(
        help="Early-warning alerts and their lifecycle (open → acknowledged → resolved).", no_args_is_help=True
    )
    app.add_typer(alerts, name="alerts")

    @alerts.command("list")
    def alerts_list(
        status: str = typer.Option(
            "open", "--status", help="open (incl. acknowledged), acknowledged, resolved or all."
        ),
        workspace_dir: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """The alerts with a status."""
        table = AlertStore(_workspace(workspace_dir)).with_status(status)
        emit(
            {"status": status, "alerts": _records(table)},
            as_json=as_json,
            render=lambda c: c.print(
                _table(
                    f"Alerts ({status})", table,
                    {"alert_id": "alert", "severity": "severity", "status": "status", "first_seen_on": "since",
                     "last_seen_on": "last seen", "acknowledged_by": "acknowledged by", "message": "message"},
                )
            ),
        )  # fmt: skip

    def _move(alert_id: str, to: str, by: str, note: str | None, workspace_dir: Path | None, as_json: bool) -> None:
        row = AlertStore(_workspace(workspace_dir)).change(alert_id, to, by=by, at=clock.now(), note=note)
        emit(row, as_json=as_json, render=lambda c: c.print(f"alert {alert_id} is {row['status']} (by {by})"))

    @alerts.command("ack")
    def alerts_ack(
        alert_id: str = typer.Argument(..., help="The alert's id (see `runoff alerts list`)."),
        by: str = typer.Option(..., "--by", help="Who acknowledges it."),
        note: str | None = typer.Option(None, "--note", help="Why, or what is being done."),
        workspace_dir: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Acknowledge an open alert (someone is on it)."""
        _move(alert_id, "acknowledged", by, note, workspace_dir, as_json)

    @alerts.command("resolve")
    def alerts_resolve(
        alert_id: str = typer.Argument(..., help="The alert's id (see `runoff alerts list`)."),
        by: str = typer.Option(..., "--by", help="Who resolves it."),
        note: str | None = typer.Option(None, "--note", help="How it was resolved."),
        workspace_dir: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Resolve an open or acknowledged alert."""
        _move(alert_id, "resolved", by, note, workspace_dir, as_json)
