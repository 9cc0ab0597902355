"""Entry point: builds the Typer app from one module per command group and maps errors once."""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import typer
from typer.core import TyperGroup

from runoff import __version__
from runoff.cli.output import JSON_META_KEY, fail
from runoff.errors import RunoffError

# Command-group modules; each exposes ``register(app)``.
COMMAND_MODULES = (
    "runoff.cli.product",
    "runoff.cli.schedule",
    "runoff.cli.quote",
    "runoff.cli.ledger",
    "runoff.cli.adjustments",
    "runoff.cli.close",
    "runoff.cli.month_end",
    "runoff.cli.book",
    "runoff.cli.tape",
    "runoff.cli.risk",
    "runoff.cli.model",
    "runoff.cli.plan",
    "runoff.cli.compliance",
    "runoff.cli.notices",
    "runoff.cli.pilot",
    "runoff.cli.demo",
)


class RunoffGroup(TyperGroup):
    """The root command group: maps a :class:`RunoffError` from any command to one line and exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RunoffError as exc:
            fail(exc, as_json=bool(ctx.meta.get(JSON_META_KEY, False)))
            return None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"runoff {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="runoff",
        cls=RunoffGroup,
        help="Plan, simulate and run the wind-down of a consumer installment credit product.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """runoff: assess the book, design and check the exit plan, simulate it, execute and monitor it."""

    for name in COMMAND_MODULES:
        import_module(name).register(app)
    return app


def run() -> None:
    """Console-script entry: user mistakes become one line and exit code 2, never a traceback."""
    as_json = "--json" in sys.argv
    try:
        build_app()(standalone_mode=True)
    except RunoffError as exc:
        fail(exc, as_json=as_json)


if __name__ == "__main__":
    run()
