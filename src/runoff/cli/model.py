"""`runoff model train|validate|list`, `runoff score`, `runoff stress`: PD models and stress tests on the book."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from runoff.app import clock
from runoff.app import models as use_cases
from runoff.calendar import add_months
from runoff.cli.output import JsonOption, emit, err_console
from runoff.errors import InvalidInput, describe_validation_error
from runoff.risk.target import TargetDefinition
from runoff.store.executors import scheduler_address
from runoff.store.models import ModelRegistry
from runoff.store.workspace import Workspace, locate_workspace

WorkspaceOption = typer.Option(
    None, "--workspace", "-w", help="Workspace folder (default: RUNOFF_WORKSPACE, else the current folder)."
)
SchedulerOption = typer.Option(
    None, "--scheduler", help="Dask scheduler address (default: RUNOFF_DASK_SCHEDULER; none runs in-process)."
)
VersionOption = typer.Option(None, "--version", "-v", help="Model version, e.g. v0003 (default: the newest).")
METRICS = ("auc", "gini", "ks", "brier", "hosmer_lemeshow_p", "mean_pd", "observed_rate", "score_psi")


def parse_date(text: str | None, *, option: str) -> date | None:
    """YYYY-MM-DD, or YYYY-MM for that month's end; a clear error otherwise."""
    if text is None:
        return None
    try:
        if len(text) == 7:
            return add_months(date.fromisoformat(f"{text}-01"), 0, anchor_day=31)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"`{option}`: {text!r} is not a date; expected YYYY-MM-DD (or YYYY-MM for the month end)",
            field=option.lstrip("-"),
        ) from None


def _progress(label: str, *, quiet: bool) -> tuple[Progress | None, Any]:
    if quiet:
        return None, None
    bar = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def _run(label: str, as_json: bool, job: Any) -> Any:
    bar, update = _progress(label, quiet=as_json)
    if bar is None:
        return job(None)
    with bar:
        return job(update)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _render_train(data: dict[str, Any], console: Console) -> None:
    console.print(
        f"model {data['version']} ({data['kind']}, {data['source']}): {data['training_rows']:,} training rows, "
        f"{data['training_bads']:,} bads; target {data['target'].get('description', '')}",
        highlight=False,
    )
    window = data["data_window"]
    if "development_observation" in window:
        console.print(
            f"development at {window['development_observation']}, out of time at {window['out_of_time_observation']}",
            highlight=False,
        )
    table = Table(title="Validation")
    table.add_column("sample")
    for m in ("count", "bads", *METRICS):
        table.add_column(m, justify="right")
    for sample, metrics in data["metrics"].items():
        table.add_row(sample, *[_fmt(metrics.get(m)) for m in ("count", "bads", *METRICS)])
    console.print(table)
    console.print(f"features ({len(data['features'])}): {', '.join(data['features'])}", highlight=False)
    for name, why in data.get("dropped", {}).items():
        console.print(f"  left out {name}: {why}", highlight=False)


def _render_list(rows: list[dict[str, Any]], console: Console) -> None:
    if not rows:
        console.print("no model yet: `runoff model train`")
        return
    table = Table(title="Models")
    for col in ("version", "kind", "created_at", "source", "observation", "features", "training_rows", "auc", "ks"):
        table.add_column(col, justify="right" if col in ("features", "training_rows", "auc", "ks") else "left")
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in ("version", "kind", "created_at", "source", "observation", "features",
                                                  "training_rows", "auc", "ks")])  # fmt: skip
    console.print(table)


def _render_stress(data: dict[str, Any], console: Console) -> None:
    t = data["totals"]
    console.print(
        f"scenario {data['scenario']['name']} on {int(t['customers']):,} customers at {data['as_of']} "
        f"(model {data['model_version']}): expected loss {t['el_base_yuan']:,.0f} → {t['el_stressed_yuan']:,.0f} yuan "
        f"({t['el_base_rate']:.2%} → {t['el_stressed_rate']:.2%} of {t['ead_yuan']:,.0f} exposure)",
        highlight=False,
    )
    rows = data["by_segment"]
    if not rows:
        return
    segments = [k for k in rows[0] if k not in t]
    table = Table(title="By segment")
    for col in (*segments, "customers", "EAD", "PD base", "PD stressed", "EL base", "EL stressed", "DSR>50% base",
                "DSR>50% stressed"):  # fmt: skip
        table.add_column(col, justify="left" if col in segments else "right")
    for r in rows:
        table.add_row(
            *[str(r[s]) for s in segments], f"{r['customers']:,}", f"{r['ead_yuan']:,.0f}",
            f"{r['pd_base_ead_weighted']:.2%}", f"{r['pd_stressed_ead_weighted']:.2%}", f"{r['el_base_yuan']:,.0f}",
            f"{r['el_stressed_yuan']:,.0f}", f"{r.get('share_dsr_over_50pct_base', 0):.2%}",
            f"{r.get('share_dsr_over_50pct_stressed', 0):.2%}",
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``model`` group and the ``score`` and ``stress`` commands to ``app``."""
    model_app = typer.Typer(help="PD models (违约概率): train, validate, list.", no_args_is_help=True)
    app.add_typer(model_app, name="model")

    @model_app.command("train")
    def train(
        kind: str = typer.Option("scorecard", "--kind", help="scorecard or lightgbm."),
        observation: str | None = typer.Option(
            None, "--observation", help="Out-of-time observation date (default: last month end − horizon)."
        ),
        data: Path | None = typer.Option(None, "--data", help="Train on this CSV/Parquet file instead of the book."),
        target: str | None = typer.Option(None, "--target", help="With --data: the outcome column."),
        bad: str | None = typer.Option(None, "--bad", help="With --data: the outcome value that means default."),
        development_offset: int = typer.Option(
            use_cases.DEFAULT_DEVELOPMENT_OFFSET, "--development-offset", help="Months from development to out of time."
        ),
        holdout: float = typer.Option(use_cases.DEFAULT_HOLDOUT, "--holdout", help="Share of rows held out."),
        default_dpd: int = typer.Option(90, "--default-dpd", help="DPD that counts as default."),
        horizon: int = typer.Option(12, "--horizon", help="Months after the observation date."),
        seed: int = typer.Option(0, "--seed", help="Seed of the holdout split and the model."),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Train a PD model on the book (or a file), validate it and save it as a new version."""
        workspace = Workspace.open(locate_workspace(workspace_dir))
        if (data is None) != (target is None):
            raise InvalidInput("`--data` and `--target` go together: the file and its outcome column", field="target")
        if data is None and bad is not None:
            raise InvalidInput("`--bad`: only with --data FILE --target COLUMN", field="bad")
        if data is not None and target is not None:
            result = use_cases.train_from_file(
                workspace, now=clock.now(), path=data, target_column=target, bad_value=bad, kind=kind,
                holdout=holdout, seed=seed,
            )  # fmt: skip
        else:
            try:
                definition = TargetDefinition(dpd_threshold=default_dpd, horizon_months=horizon)
            except ValidationError as exc:
                raise InvalidInput(describe_validation_error(exc, source="target options")) from None
            when = parse_date(observation, option="--observation")
            result = _run(
                "building features",
                as_json,
                lambda update: use_cases.train_from_book(
                    workspace, now=clock.now(), kind=kind, observation=when, target=definition,
                    development_offset_months=development_offset, holdout=holdout, seed=seed,
                    scheduler=scheduler_address(scheduler), progress=update,
                ),
            )  # fmt: skip
        out = result.as_dict()
        emit(out, as_json=as_json, render=lambda c: _render_train(out, c))

    @model_app.command("validate")
    def validate(
        version: str | None = VersionOption,
        observation: str | None = typer.Option(None, "--observation", help="Validate at this date (book models)."),
        data: Path | None = typer.Option(None, "--data", help="Validate on this file (file models)."),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Validate a model out of time: AUC, Gini, KS, PSI, calibration by decile, Brier, Hosmer–Lemeshow."""
        workspace = Workspace.open(locate_workspace(workspace_dir))
        when = parse_date(observation, option="--observation")
        out = _run(
            "validating",
            as_json,
            lambda update: use_cases.validate_model(
                workspace, version=version, observation=when, data=data, scheduler=scheduler_address(scheduler),
                progress=update,
            ),
        )  # fmt: skip

        def render(c: Console) -> None:
            reports = out["reports"] if out["stored"] else {out["summary"]["sample"]: out["summary"]}
            table = Table(title=f"Validation of {out['version']} ({out['kind']})")
            table.add_column("sample")
            for m in ("count", "bads", *METRICS):
                table.add_column(m, justify="right")
            for sample, metrics in reports.items():
                table.add_row(sample, *[_fmt(metrics.get(m)) for m in ("count", "bads", *METRICS)])
            c.print(table)

        emit(out, as_json=as_json, render=render)

    @model_app.command("list")
    def list_models(workspace_dir: Path | None = WorkspaceOption, as_json: bool = JsonOption) -> None:
        """The saved model versions, newest last."""
        workspace = Workspace.open(locate_workspace(workspace_dir))
        rows = [r.summary() for r in ModelRegistry(workspace).records()]
        emit({"models": rows}, as_json=as_json, render=lambda c: _render_list(rows, c))

    @app.command("score")
    def score(
        version: str | None = VersionOption,
        as_of: str | None = typer.Option(None, "--as-of", help="Score at this date (default: the last month end)."),
        top: int = typer.Option(3, "--reasons", help="Reason codes per customer (0 for none)."),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Score every customer with an active loan into the workspace's `scores` table (PD, points, reasons)."""
        workspace = Workspace.open(locate_workspace(workspace_dir))
        when = parse_date(as_of, option="--as-of")
        if top < 0:
            raise InvalidInput(f"`--reasons`: {top} is not allowed; expected 0 or more", field="reasons")
        out = _run(
            "scoring",
            as_json,
            lambda update: use_cases.score_book(
                workspace, version=version, as_of=when, top=top, scheduler=scheduler_address(scheduler),
                progress=update,
            ),
        )  # fmt: skip
        emit(
            out,
            as_json=as_json,
            render=lambda c: c.print(
                f"scored {out['rows']:,} customers at {out['as_of']} with model {out['model_version']} "
                f"({out['kind']}): mean PD {out['mean_pd']:.2%}, {out['in_default']:,} already in default, "
                f"median score {out['score_median']:.0f}; table {out['table']}",
                highlight=False,
            ),
        )

    @app.command("stress")
    def stress(
        scenario: Path = typer.Argument(..., help="Scenario YAML (see examples/stress/)."),
        version: str | None = VersionOption,
        as_of: str | None = typer.Option(
            None, "--as-of", help="Stress the book at this date (default: last month end)."
        ),
        segment_by: list[str] = typer.Option([], "--by", help="Segment columns (default: the scenario's)."),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Repayment-ability stress test: stressed PD, affordability and expected loss by segment vs the base case."""
        workspace = Workspace.open(locate_workspace(workspace_dir))
        when = parse_date(as_of, option="--as-of")
        out = _run(
            "building features",
            as_json,
            lambda update: use_cases.stress_book(
                workspace, scenario, version=version, as_of=when, segment_by=segment_by or None,
                scheduler=scheduler_address(scheduler), progress=update,
            ),
        )  # fmt: skip
        emit(out, as_json=as_json, render=lambda c: _render_stress(out, c))
