"""`runoff model train|validate|list`, `runoff score`, `runoff stress`: end to end on a generated book and a CSV."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from scipy.special import expit
from typer.testing import CliRunner

from runoff.cli import model as model_cli
from runoff.cli.main import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "stress"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """The root app with this group registered (once cli.main lists runoff.cli.model, as it is)."""
    app = build_app()
    names = {g.name for g in app.registered_groups}
    if "model" not in names:
        model_cli.register(app)
    return app


def run(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, list(args))


def ok_json(app: typer.Typer, *args: str) -> dict:
    result = run(app, *args, "--json")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def book(app: typer.Typer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model-cli") / "book"
    assert run(app, "init", str(root)).exit_code == 0
    result = run(app, "generate", "--customers", "4000", "--months", "20", "--seed", "7", "-w", str(root), "--json")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def trained(app: typer.Typer, book: Path) -> dict[str, dict]:
    scorecard = ok_json(app, "model", "train", "-w", str(book))
    gbm = ok_json(app, "model", "train", "--kind", "lightgbm", "-w", str(book))
    return {"scorecard": scorecard, "lightgbm": gbm}


def test_train_develops_then_validates_out_of_time(trained: dict[str, dict]) -> None:
    out = trained["scorecard"]
    assert out["version"] == "v0001"
    assert out["source"] == "book"
    # 20 months from 2024-01: last month end 2025-08-31, out of time 12 months earlier, development 6 before that
    assert out["data_window"]["out_of_time_observation"] == "2024-08-31"
    assert out["data_window"]["development_observation"] == "2024-02-29"
    assert set(out["metrics"]) == {"train", "holdout", "out_of_time"}
    oot = out["metrics"]["out_of_time"]
    assert oot["auc"] > 0.65
    assert oot["gini"] == pytest.approx(2 * oot["auc"] - 1)
    assert 0 <= oot["score_psi"] < 1
    assert len(out["training_data_sha256"]) == 64
    assert trained["lightgbm"]["version"] == "v0002"
    # the same book, dates and split give the same development sample, byte for byte
    assert trained["lightgbm"]["training_data_sha256"] == out["training_data_sha256"]


def test_list_shows_both_versions(app: typer.Typer, book: Path, trained: dict[str, dict]) -> None:
    rows = ok_json(app, "model", "list", "-w", str(book))["models"]
    assert [(r["version"], r["kind"]) for r in rows] == [("v0001", "scorecard"), ("v0002", "lightgbm")]
    human = run(app, "model", "list", "-w", str(book))
    assert "v0002" in human.stdout


def test_validate_recomputes_the_out_of_time_figures(app: typer.Typer, book: Path, trained: dict[str, dict]) -> None:
    out = ok_json(app, "model", "validate", "--version", "1", "-w", str(book))
    assert out["version"] == "v0001"
    assert out["summary"]["auc"] == pytest.approx(trained["scorecard"]["metrics"]["out_of_time"]["auc"])
    tables = out["report"]["tables"]
    assert len(tables["calibration"]) == 10
    assert tables["feature_psi"]
    assert (book / "models" / "v0001" / "validation-2024-08-31.json").is_file()


def test_score_writes_the_scores_table_naming_the_model(app: typer.Typer, book: Path, trained: dict[str, dict]) -> None:
    out = ok_json(app, "score", "--as-of", "2025-06", "-w", str(book))
    assert out["model_version"] == "v0002"
    assert out["as_of"] == "2025-06-30"
    scores = pl.read_parquet(book / "data" / "scores" / "*.parquet").filter(pl.col("as_of") == date(2025, 6, 30))
    assert scores.height == out["rows"] > 0
    assert set(scores.get_column("model_version").unique()) == {"v0002"}
    assert {"pd", "pd_model", "score", "in_default", "reason_1", "reason_1_points"} <= set(scores.columns)
    assert scores.filter(pl.col("in_default")).get_column("pd").min() == 1.0
    assert scores.get_column("pd").is_between(0, 1).all()


def test_stress_reports_expected_loss_beside_the_base_case(
    app: typer.Typer, book: Path, trained: dict[str, dict]
) -> None:
    out = ok_json(app, "stress", str(EXAMPLES / "severe-2020.yaml"), "--version", "v1", "-w", str(book))
    assert out["model_version"] == "v0001"
    totals = out["totals"]
    assert totals["el_stressed_yuan"] > totals["el_base_yuan"] > 0
    assert totals["pd_stressed_mean"] > totals["pd_base_mean"]
    assert {r["income_band"] for r in out["by_segment"]} <= {"<3k", "3k-5k", "5k-8k", "8k-15k", "15k+"}
    assert all(Path(f).is_file() for f in out["files"])
    human = run(app, "stress", str(EXAMPLES / "rate-rise.yaml"), "-w", str(book))
    assert human.exit_code == 0
    assert "expected loss" in human.stdout


# --- an external development sample --------------------------------------------------------------------------------


def lender_sample(path: Path, n: int = 3000, seed: int = 0) -> Path:
    """A lender's own application sample: text columns, an id, and the outcome as good/bad text."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    frame = pl.DataFrame(
        {
            "application_id": np.arange(n),
            "monthly_income": np.round(np.exp(8.6 - 0.3 * z + rng.normal(0, 0.4, n))),
            "bureau_late_12m": rng.poisson(np.exp(-1.2 + 0.8 * z)),
            "city": rng.choice(["Shanghai", "Chengdu", "Zhoukou"], n),
            "employment": rng.choice(["salaried", "self-employed", ""], n, p=[0.6, 0.3, 0.1]),
            "status": np.where(rng.random(n) < expit(-2.2 + 1.2 * z), "bad", "good"),
        }
    ).with_columns(pl.col("employment").replace("", None))
    frame.write_csv(path)
    return path


def test_the_external_data_workflow_trains_and_validates_a_lenders_sample(app: typer.Typer, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    assert run(app, "init", str(root)).exit_code == 0
    data = lender_sample(tmp_path / "applications.csv")
    out = ok_json(app, "model", "train", "--data", str(data), "--target", "status", "--bad", "bad", "-w", str(root))
    assert out["source"] == "file"
    assert "application_id" not in out["features"]
    assert set(out["metrics"]) == {"train", "holdout"}
    assert out["metrics"]["holdout"]["auc"] > 0.65
    assert out["target"]["bad_value"] == "bad"
    stored = ok_json(app, "model", "validate", "-w", str(root))
    assert stored["stored"] is True
    fresh = ok_json(
        app, "model", "validate", "--data", str(lender_sample(tmp_path / "new.csv", seed=1)), "-w", str(root)
    )
    assert fresh["summary"]["auc"] > 0.65
    gbm = ok_json(app, "model", "train", "--kind", "lightgbm", "--data", str(data), "--target", "status", "--bad",
                  "bad", "-w", str(root))  # fmt: skip
    assert gbm["version"] == "v0002"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "train", "--data", "{data}", "--target", "status", "--bad", "default"], "`--bad`: 'default' is not a value"),
        (["model", "train", "--data", "{data}", "--target", "status"], "say which value means default"),
        (["model", "train", "--data", "{data}", "--target", "outcome"], "`--target`: 'outcome' is not a column"),
        (["model", "train", "--data", "{data}"], "`--data` and `--target` go together"),
        (["model", "train", "--data", "{missing}", "--target", "status"], "does not exist"),
        (["model", "train", "--kind", "forest", "--data", "{data}", "--target", "status", "--bad", "bad"], "not a model kind"),
        (["model", "validate", "--version", "9"], "v0009 is not in"),
        (["score"], "no model in"),
        (["model", "train", "--observation", "31/12/2024"], "is not a date"),
        (["model", "train"], "table `performance` is not in"),
    ],
    ids=["bad-value-unknown", "bad-value-needed", "target-unknown", "data-without-target", "missing-file",
         "unknown-kind", "unknown-version", "score-without-model", "bad-date", "no-book"],
)  # fmt: skip
def test_user_mistakes_are_one_line_and_exit_code_2(
    app: typer.Typer, tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "ws"
    assert run(app, "init", str(root)).exit_code == 0
    data = lender_sample(tmp_path / "a.csv", n=300)
    filled = [a.format(data=data, missing=tmp_path / "nope.csv") for a in args]
    result = run(app, *filled, "-w", str(root))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("column", "values", "args", "message"),
    [
        ("status", ["good"] * 200, ["--target", "status", "--bad", "good"], "has only bads"),
        ("empty", [None] * 200, ["--target", "status", "--bad", "bad"], "`empty`: every one of its"),
    ],
    ids=["one-class-target", "all-missing-feature"],
)
def test_a_file_with_one_class_or_an_empty_feature_is_refused(
    app: typer.Typer, tmp_path: Path, column: str, values: list, args: list[str], message: str
) -> None:
    root = tmp_path / "ws"
    assert run(app, "init", str(root)).exit_code == 0
    frame = pl.read_csv(lender_sample(tmp_path / "a.csv", n=200)).with_columns(
        pl.Series(column, values, dtype=pl.String)
    )
    frame.write_csv(tmp_path / "b.csv")
    result = run(app, "model", "train", "--data", str(tmp_path / "b.csv"), *args, "-w", str(root))
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_an_observation_without_a_full_outcome_window_is_refused(app: typer.Typer, book: Path) -> None:
    result = run(app, "model", "train", "--observation", "2025-03-31", "-w", str(book))
    assert result.exit_code == 2
    assert "needs performance up to 2026-03-31" in result.stderr


def test_a_file_model_cannot_score_the_book(app: typer.Typer, book: Path, tmp_path: Path, trained: dict) -> None:
    data = lender_sample(tmp_path / "a.csv", n=600)
    ok_json(app, "model", "train", "--data", str(data), "--target", "status", "--bad", "bad", "-w", str(book))
    result = run(app, "score", "-w", str(book))
    assert result.exit_code == 2
    assert "trained on a file" in result.stderr


def test_the_assessment_report_gets_the_pd_and_stress_sections(app: typer.Typer, book: Path, trained: dict) -> None:
    from runoff.app.models import report_sections
    from runoff.reports.assessment import SLOTS, arrange_sections, render_report
    from runoff.store.workspace import Workspace

    ok_json(app, "stress", str(EXAMPLES / "severe-2020.yaml"), "--version", "1", "-w", str(book))
    sections = report_sections(Workspace.open(book), as_of=date(2025, 8, 31))
    keys = [s.key for s in sections]
    assert keys == ["score-distribution", "roc", "ks", "calibration", "stress"]
    assert all(s.figures for s in sections)
    html = render_report(arrange_sections([], sections), title="t", as_of=date(2025, 8, 31))
    for key in keys:
        assert f"Not available yet: {SLOTS[key][2]}" not in html
    assert "v0001 scorecard AUC" in html
    assert "severe-2020" in html
    assert report_sections(Workspace.open(book), as_of=date(2024, 1, 31))[-1].key != "stress"  # runs after the date


def test_scores_keep_one_set_of_rows_per_date(app: typer.Typer, book: Path, trained: dict) -> None:
    first = ok_json(app, "score", "--as-of", "2025-05-31", "--version", "1", "-w", str(book))
    ok_json(app, "score", "--as-of", "2025-06-30", "--version", "1", "-w", str(book))
    again = ok_json(app, "score", "--as-of", "2025-05-31", "--version", "1", "--reasons", "0", "-w", str(book))
    scores = pl.read_parquet(book / "data" / "scores" / "*.parquet")
    per_date = dict(scores.group_by("as_of").len().iter_rows())
    assert per_date[date(2025, 5, 31)] == first["rows"] == again["rows"]
    assert date(2025, 6, 30) in per_date
    assert scores.select("customer_id", "as_of").is_duplicated().sum() == 0


@pytest.mark.slow
def test_features_on_a_dask_cluster_equal_the_in_process_ones(tmp_path: Path) -> None:
    """Three partitions: the per-partition features give the same frame in process and on a local cluster."""
    distributed = pytest.importorskip("dask.distributed")
    from runoff.app.book import generate_book
    from runoff.app.models import book_features
    from runoff.portfolio.generator import BookConfig
    from runoff.risk.target import TargetDefinition
    from runoff.store.workspace import Workspace

    workspace = Workspace.init(tmp_path / "ws")
    generate_book(workspace, BookConfig(customers=9000, months=14, seed=2, blocks_per_partition=1))
    assert workspace.partitions("performance") == [0, 1, 2]
    target = TargetDefinition(horizon_months=6)
    here = book_features(workspace, as_of=date(2024, 6, 30), target=target)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        there = book_features(workspace, as_of=date(2024, 6, 30), target=target, scheduler=cluster.scheduler_address)
    assert here.height > 5000
    assert here.get_column("customer_id").is_unique().all()
    assert here.equals(there)


@pytest.mark.parametrize(
    ("values", "bad", "expected"),
    [
        ([0, 1, 1, 0], None, [0, 1, 1, 0]),
        ([0.0, 1.0, 1.0, 0.0], "1", [0, 1, 1, 0]),
        ([True, False, True, True], None, [1, 0, 1, 1]),
        (["good", "bad", "bad", "good"], "bad", [0, 1, 1, 0]),
        (["M0", "M3+", "M0", "M0"], "M3+", [0, 1, 0, 0]),
        ([1, 2, 2, 1], "2", [0, 1, 1, 0]),
    ],
    ids=["ints-default", "floats-one", "booleans", "text", "text-with-symbols", "ints-named"],
)
def test_the_bad_value_is_read_by_the_columns_type(values: list, bad: str | None, expected: list[int]) -> None:
    from runoff.app.models import bad_flags

    assert bad_flags(pl.Series("y", values), bad).to_list() == expected


def test_a_numeric_outcome_other_than_0_and_1_needs_the_bad_value() -> None:
    from runoff.app.models import bad_flags
    from runoff.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not just 0 and 1"):
        bad_flags(pl.Series("y", [1, 2, 2]), None)
