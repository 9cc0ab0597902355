"""`runoff demo`: the main job on a fresh workspace, ending with where its reports are."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from runoff.app.demo import StepResult, run_demo
from runoff.cli.output import JsonOption, console, emit


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command("demo")
    def demo(
        workspace: Path = typer.Option(Path("demo-workspace"), "--workspace", "-w", help="Folder to (re)create."),
        examples: Path = typer.Option(Path("examples"), "--examples", help="The examples folder (products, plans)."),
        customers: int = typer.Option(100_000, "--customers", help="Customers in the generated book.", min=500),
        as_json: bool = JsonOption,
    ) -> None:
        """Run the whole wind-down on a generated book in a fresh workspace (the main job)."""
        started = time.perf_counter()

        def show(step: StepResult) -> None:
            if not as_json:
                console.print(Panel("\n".join(step.lines), title=step.title, title_align="left"))

        bars = Progress(
            TextColumn("{task.description:<40}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=as_json,
        )
        tasks: dict[str, TaskID] = {}

        def track(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)

        with bars:
            steps = run_demo(workspace, examples, report=show, track=track, customers=customers)
        outputs = [o for s in steps for o in s.outputs]
        summary = {
            "workspace": str(workspace.resolve()),
            "seconds": round(time.perf_counter() - started, 1),
            "steps": [{"title": s.title, "data": s.data, "outputs": s.outputs} for s in steps],
            "outputs": outputs,
        }

        def render(c: object) -> None:
            console.print(f"[bold]demo finished in {summary['seconds']} s[/bold]; workspace: {summary['workspace']}")
            for path in outputs:
                console.print(f"  report: {path}")

        emit(summary, as_json=as_json, render=render)
