"""Fixtures shared by the CLI tests: the app, and a runner on a migrated ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from runoff.cli.main import build_app


@pytest.fixture(scope="module")
def app():
    return build_app()


@pytest.fixture
def cli(app, ledger_url, tmp_path):
    """Run runoff with the ledger at ``ledger_url`` (migrated first), returning (exit code, stdout, stderr).

    A user's mistake must end as a message and an exit code: any traceback or stray exception fails the test.
    """
    env = {"RUNOFF_DATABASE_URL": ledger_url, "RUNOFF_WORKSPACE": str(tmp_path)}

    def run(*args: str):
        result = CliRunner(env=env).invoke(app, list(args))
        assert "Traceback" not in result.stdout + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("ledger", "migrate", "--json")
    assert code == 0, out + err
    return run
