"""`runoff init`, `runoff generate`, `runoff info`: the workspace and the book in it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from runoff.app import book
from runoff.app.context import build_context
from runoff.cli.output import JsonOption, emit, err_console, fail
from runoff.config import Settings
from runoff.errors import InvalidInput, RunoffError, describe_validation_error
from runoff.portfolio.generator import BookConfig
from runoff.portfolio.summary import BookSummary
from runoff.store.executors import scheduler_address
from runoff.store.workspace import Workspace, locate_workspace

WorkspaceOption = typer.Option(
    None, "--workspace", "-w", help="Workspace folder (default: RUNOFF_WORKSPACE, else the current folder)."
)
SchedulerOption = typer.Option(
    None, "--scheduler", help="Dask scheduler address (default: RUNOFF_DASK_SCHEDULER; none runs in-process)."
)


def _yuan(fen: int | float) -> str:
    return f"{fen / 100:,.2f}"


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _progress_bar(label: str, *, quiet: bool) -> tuple[Progress | None, Any]:
    if quiet:
        return None, None
    bar = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def _render_summary(summary: BookSummary, console: Console) -> None:
    data = summary.as_dict()
    if not data["row_counts"]:
        console.print("the workspace holds no book yet: run `runoff generate` or `runoff import` first")
        return
    orig = data["originated"]
    head = Table(title="Book", show_header=False)
    for table, rows in data["row_counts"].items():
        head.add_row(f"{table} rows", f"{rows:,}")
    head.add_row("principal originated", _yuan(orig["principal_fen"]))
    head.add_row("originated", f"{orig['first_originated_on']} .. {orig['last_originated_on']}")
    head.add_row("month ends", f"{data['first_month_end']} .. {data['as_of']}")
    console.print(head)

    buckets = Table(title=f"Balance by bucket at {data['as_of']}")
    for col in ("bucket", "loans", "principal", "share of open balance"):
        buckets.add_column(col, justify="right" if col != "bucket" else "left")
    for r in data["by_bucket"]:
        amount = r["charged_off_fen"] if r["bucket"] == "charged-off" else r["balance_fen"]
        share = _pct(r["share_of_balance"]) if r["bucket"] not in ("charged-off", "closed") else ""
        buckets.add_row(r["bucket"], f"{r['loans']:,}", _yuan(amount), share)
    console.print(buckets)

    products = Table(title="By product")
    for col in ("product", "originated", "lent", "open", "balance", "90+", "90+ %"):
        products.add_column(col, justify="left" if col == "product" else "right")
    for r in data["by_product"]:
        products.add_row(
            r["product_id"], f"{r['originated']:,}", _yuan(r["originated_fen"]), f"{r['open_loans']:,}",
            _yuan(r["balance_fen"]), _yuan(r["m4plus_fen"]), _pct(r["m4plus_ratio"]),
        )  # fmt: skip
    console.print(products)

    vintages = Table(title="By vintage")
    for col in ("vintage", "originated", "lent", "open", "balance", "90+", "written off", "loss %"):
        vintages.add_column(col, justify="left" if col == "vintage" else "right")
    for r in data["by_vintage"]:
        vintages.add_row(
            r["vintage"], f"{r['originated']:,}", _yuan(r["originated_fen"]), f"{r['open_loans']:,}",
            _yuan(r["balance_fen"]), _yuan(r["m4plus_fen"]), _yuan(r["charged_off_fen"]), _pct(r["loss_rate"]),
        )  # fmt: skip
    console.print(vintages)


def register(app: typer.Typer) -> None:
    """Add ``init``, ``generate`` and ``info`` to ``app``."""

    @app.command("init")
    def init(
        directory: Path = typer.Argument(..., help="Folder to create (or complete) as a workspace."),
        as_json: bool = JsonOption,
    ) -> None:
        """Create a workspace: runoff.toml, data/, models/, runs/, reports/."""
        try:
            workspace = book.init_workspace(directory)
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        out = {"workspace": str(workspace.root.resolve()), "folders": ["data", "models", "runs", "reports"]}
        emit(out, as_json=as_json, render=lambda c: c.print(f"workspace ready at {out['workspace']}"))

    @app.command("generate")
    def generate(
        customers: int = typer.Option(..., "--customers", help="Customers in the book."),
        months: int = typer.Option(24, "--months", help="Months of history."),
        seed: int = typer.Option(0, "--seed", help="Root seed: the same seed gives the same book byte for byte."),
        start: str = typer.Option("2024-01", "--start", help="First month of the book, YYYY-MM."),
        no_stress: bool = typer.Option(False, "--no-stress", help="Leave out the stress episode."),
        load_ledger: bool = typer.Option(
            False, "--load-ledger", help="Then load the open loans' current positions into the workspace's ledger."
        ),
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Generate a synthetic book (customers, loans, schedules, payments, month-end performance)."""
        try:
            if load_ledger:  # refuse before generating, so the tables and the ledger never disagree
                with build_context(Settings(workspace=locate_workspace(workspace_dir))) as ctx:
                    book.ensure_ledger_empty(ctx)
            result = _generate(customers, months, seed, start, no_stress, workspace_dir, scheduler, as_json)
            loaded = _load_ledger(workspace_dir, quiet=as_json) if load_ledger else None
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        out = result.as_dict()
        if loaded is not None:
            out["ledger"] = loaded.as_dict()

        def render(c: Console) -> None:
            _render_generate(result, c)
            if loaded is not None:
                c.print(
                    f"ledger: {loaded.loans:,} open loans with {loaded.installments:,} installments, "
                    f"{loaded.customers:,} customers, {loaded.accounts:,} credit lines as of {loaded.as_of} "
                    f"({loaded.seconds:.1f} s)"
                )

        emit(out, as_json=as_json, render=render)

    @app.command("info")
    def info(
        workspace_dir: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """What the book holds: counts, balances by bucket, product and vintage, date range."""
        try:
            workspace = Workspace.open(locate_workspace(workspace_dir))
            summary = book.book_info(workspace, scheduler=scheduler_address(scheduler))
            data = summary.as_dict()
            data["workspace"] = str(workspace.root.resolve())
            data["book"] = book.book_metadata(workspace)
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        emit(data, as_json=as_json, render=lambda c: _render_summary(summary, c))


def _generate(
    customers: int,
    months: int,
    seed: int,
    start: str,
    no_stress: bool,
    workspace_dir: Path | None,
    scheduler: str | None,
    as_json: bool,
) -> book.GenerateResult:
    try:
        start_month = date.fromisoformat(f"{start}-01")
    except ValueError:
        raise InvalidInput(
            f"`--start`: {start!r} is not a month; expected YYYY-MM such as 2024-01", field="start"
        ) from None
    try:
        config = BookConfig(
            customers=customers, months=months, seed=seed, start_month=start_month, stress=not no_stress
        )
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, source="generate options")) from None
    workspace = Workspace.open(locate_workspace(workspace_dir))
    bar, update = _progress_bar("generating partitions", quiet=as_json)
    if bar is not None:
        with bar:
            return book.generate_book(workspace, config, scheduler=scheduler_address(scheduler), progress=update)
    return book.generate_book(workspace, config, scheduler=scheduler_address(scheduler))


def _load_ledger(workspace_dir: Path | None, *, quiet: bool) -> book.LedgerLoadResult:
    root = locate_workspace(workspace_dir)
    workspace = Workspace.open(root)
    with build_context(Settings(workspace=root)) as ctx:
        bar, update = _progress_bar("loading the ledger", quiet=quiet)
        if bar is not None:
            with bar:
                return book.load_ledger(workspace, ctx, progress=update)
        return book.load_ledger(workspace, ctx)


def _render_generate(result: book.GenerateResult, c: Console) -> None:
    t = result.totals
    c.print(
        f"generated {t.get('customers_rows', 0):,} customers, {t.get('loans_rows', 0):,} loans "
        f"({_yuan(t.get('principal_fen', 0))} yuan lent), {t.get('installments_rows', 0):,} installments, "
        f"{t.get('payments_rows', 0):,} payments, {t.get('performance_rows', 0):,} month-end rows "
        f"in {result.partitions} partition(s); true parameters in data/truth/"
    )
    table = Table(title="Delinquency against published ranges (docs/book.md)")
    for col in ("figure", "numerator", "denominator", "ratio", "published range"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for name, fig in result.calibration.items():
        ratio = "" if fig["ratio"] is None else _pct(fig["ratio"])
        rng = fig.get("published_range")
        span = f"{_pct(rng[0])} – {_pct(rng[1])}" if rng else ""
        table.add_row(name, _yuan(fig["numerator_fen"]), _yuan(fig["denominator_fen"]), ratio, span)
    c.print(table)
