"""Use cases of the PD models (违约概率模型): train, validate, score and stress, over the workspace's book or a file.

Book workflow: features and targets are built per partition on the executor
(:func:`features_partition_task`), at two observation dates — development (``observation`` minus
``development_offset_months``) and out-of-time (``observation``, by default the last month end that still has a
full outcome window). The development sample is split at random into training and holdout rows; the model is
validated on the holdout (in time) and on the out-of-time sample, against the training population's
score and feature baselines (PSI). The model, its metadata and the full validation go to the registry.

File workflow (``--data FILE --target COLUMN --bad VALUE``): a lender's own development sample (CSV or
Parquet); every other column is a feature (text columns as categories, ``id`` and ``*_id`` columns left out);
a seeded random holdout validates it the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from runoff.calendar import add_months
from runoff.errors import InvalidInput, NotFound
from runoff.reports.assessment import ReportSection, ReportTable
from runoff.risk.features import (
    FEATURE_NAMES,
    build_features,
    categorical_features,
    feature_trends,
    observation_month_end,
)
from runoff.risk.pd.model import MODEL_KINDS, PDModel, fit_pd_model
from runoff.risk.pd.validation import Baseline, ValidationReport, validation_report
from runoff.risk.stress import StressResult, load_scenario, run_stress
from runoff.risk.target import TargetDefinition, attach_target, check_window, default_flags
from runoff.store.executors import run_partitions
from runoff.store.models import ModelRecord, ModelRegistry, training_data_sha256
from runoff.store.workspace import Workspace

Progress = Callable[[int, int], None]

SCORES_TABLE = "scores"
STRESS_DIR = "stress"
VALIDATION_FILE = "validation.json"
DEFAULT_DEVELOPMENT_OFFSET = 6
DEFAULT_HOLDOUT = 0.3
ID_COLUMNS = ("id",)


# --- features per partition ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeatureTask:
    """One partition's features at ``as_of`` (and the target, when ``target`` is given), as sent to a worker."""

    root: str
    partition: int
    as_of: date
    target: TargetDefinition | None = None


def _scan(workspace: Workspace, table: str, partition: int) -> pl.LazyFrame | None:
    return workspace.scan(table, partition) if workspace.partition_path(table, partition).is_file() else None


def features_partition_task(task: FeatureTask) -> pl.DataFrame:
    """Features of one partition's customers at the date (with ``bad`` when a target is asked for)."""
    workspace = Workspace(Path(task.root))
    performance = workspace.scan("performance", task.partition)
    customers = _scan(workspace, "customers", task.partition)
    if customers is None:
        raise NotFound(f"`customers` partition {task.partition} is missing; the book needs its customers table")
    frame = build_features(
        performance,
        customers,
        as_of=task.as_of,
        accounts=_scan(workspace, "accounts", task.partition),
        payments=_scan(workspace, "payments", task.partition),
        installments=_scan(workspace, "installments", task.partition),
        loans=_scan(workspace, "loans", task.partition),
    )
    if task.target is None:
        return frame
    flags = default_flags(performance, as_of=task.as_of, definition=task.target)
    return attach_target(frame, flags, definition=task.target)


def _concat(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    parts = [p for p in parts if p.height]
    return pl.concat(parts) if parts else pl.DataFrame()


def book_partitions(workspace: Workspace) -> list[int]:
    partitions = workspace.partitions("performance")
    if not partitions:
        raise NotFound(
            f"table `performance` is not in {workspace.data_dir}; run `runoff generate` or `runoff import` first"
        )
    return partitions


def book_features(
    workspace: Workspace,
    *,
    as_of: date,
    target: TargetDefinition | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Every customer's features at ``as_of`` (and target), one partition at a time on the executor."""
    root = str(workspace.root.resolve())
    tasks = [FeatureTask(root, p, as_of, target) for p in book_partitions(workspace)]
    frame = run_partitions(features_partition_task, tasks, _concat, scheduler=scheduler, progress=progress)
    if frame.height == 0:
        raise InvalidInput(
            f"`as_of`: no customer has an active loan at {observation_month_end(as_of).isoformat()}; "
            "expected a date inside the book's history",
            field="as_of",
        )
    return frame


def book_month_ends(workspace: Workspace) -> tuple[date, date]:
    """The book's first and last month ends (from the performance table's statistics)."""
    span = (
        workspace.scan("performance")
        .select(pl.col("month_end").min().alias("first"), pl.col("month_end").max().alias("last"))
        .collect()
    )
    first, last = span.row(0)
    if last is None:
        raise InvalidInput("`performance`: the table is empty; expected month-end rows")
    return first, last


# --- training --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A trained and registered model with its validation reports (training, holdout, out-of-time)."""

    record: ModelRecord
    reports: dict[str, ValidationReport]
    model: PDModel = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.record.version,
            "kind": self.record.kind,
            "source": self.record.source,
            "data_window": self.record.data_window,
            "target": self.record.target,
            "features": self.record.selected_features,
            "dropped": self.record.description.get("dropped", {}),
            "training_rows": self.record.training_rows,
            "training_bads": self.record.training_bads,
            "training_data_sha256": self.record.training_data_sha256,
            "metrics": self.record.metrics,
        }


def _split(frame: pl.DataFrame, *, fraction: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A seeded random split into (training, holdout) rows."""
    if not 0.0 < fraction < 0.9:
        raise InvalidInput(f"`holdout`: {fraction} is not allowed; expected a share between 0 and 0.9", field="holdout")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    is_holdout = rng.random(frame.height) < fraction
    return frame.filter(pl.Series(~is_holdout)), frame.filter(pl.Series(is_holdout))


def _summary(report: ValidationReport) -> dict[str, Any]:
    d = report.discrimination
    out = d.as_dict() | {
        "sample": report.sample,
        "brier": report.calibration.brier,
        "hosmer_lemeshow_p": report.calibration.hosmer_lemeshow.p_value,
        "mean_pd": report.calibration.mean_pd,
        "observed_rate": report.calibration.observed_rate,
    }
    if report.score_psi is not None:
        out["score_psi"] = report.score_psi.value
    return out


def _baselines(model: PDModel, train: pl.DataFrame) -> tuple[Baseline, dict[str, Baseline]]:
    score = model.score_points(train)
    encoded = model.encoding.frame(train)
    edges = model.feature_edges()
    features = {
        name: Baseline.of(encoded.get_column(name).to_numpy(), edges=edges.get(name)) for name in model.features
    }
    return Baseline.of(score), features


def _report(
    model: PDModel,
    frame: pl.DataFrame,
    *,
    sample: str,
    target: str,
    baseline: tuple[Baseline, dict[str, Baseline]] | None,
    dof_offset: int,
) -> ValidationReport:
    y = frame.get_column(target).cast(pl.Int64).to_numpy()
    segment = None
    if "dpd_now" in frame.columns:  # book samples: the score by delinquency bucket at the observation date
        dpd = pl.col("dpd_now").fill_null(0)
        segment = frame.select(
            pl.when(dpd <= 0).then(pl.lit("current"))
            .when(dpd <= 30).then(pl.lit("M1"))
            .when(dpd <= 60).then(pl.lit("M2"))
            .when(dpd <= 90).then(pl.lit("M3"))
            .otherwise(pl.lit("M4+"))
        ).to_series()  # fmt: skip
    return validation_report(
        y,
        model.predict_pd(frame),
        model.score_points(frame),
        sample=sample,
        reference_score=None if baseline is None else baseline[0],
        features=model.encoding.frame(frame) if baseline is not None else None,
        feature_baselines=None if baseline is None else baseline[1],
        dof_offset=dof_offset,
        segment=segment,
    )


def _check_two_classes(frame: pl.DataFrame, *, target: str, sample: str) -> None:
    bads = int(frame.get_column(target).sum()) if frame.height else 0
    if frame.height == 0 or bads == 0 or bads == frame.height:
        only = "no rows" if frame.height == 0 else ("only bads" if bads else "no bads")
        raise InvalidInput(
            f"`{target}`: the {sample} sample has {only} ({frame.height} rows, {bads} bads); expected both goods and "
            "bads — pick another observation date or target definition",
            field=target,
        )


def _register(
    workspace: Workspace,
    model: PDModel,
    *,
    now: datetime,
    source: str,
    data_window: dict[str, Any],
    target: dict[str, Any],
    train: pl.DataFrame,
    target_column: str,
    samples: dict[str, pl.DataFrame],
    dof: dict[str, int],
) -> TrainResult:
    baseline = _baselines(model, train)
    reports = {
        name: _report(model, frame, sample=name, target=target_column, baseline=None if name == "train" else baseline,
                      dof_offset=dof.get(name, 0))
        for name, frame in samples.items()
        if frame.height
    }  # fmt: skip
    registry = ModelRegistry(workspace)
    hashed = train.select([*model.features, target_column])
    record = registry.save(
        model,
        created_at=now,
        source=source,
        data_window=data_window,
        target=target,
        selected_features=model.describe()["selected"],
        hyperparameters={k: v for k, v in model.estimator.get_params().items()},
        metrics={name: _summary(r) for name, r in reports.items()},
        training_rows=train.height,
        training_bads=int(train.get_column(target_column).sum()),
        training_data_sha256=training_data_sha256(hashed),
        baselines={"score": baseline[0].as_dict(), "features": {k: b.as_dict() for k, b in baseline[1].items()}},
    )
    registry.write_document(record.version, VALIDATION_FILE, {name: r.as_dict() for name, r in reports.items()})
    return TrainResult(record=record, reports=reports, model=model)


def default_observation(workspace: Workspace, target: TargetDefinition) -> date:
    """The latest month end whose outcome window the book still covers (last month end − horizon)."""
    _, last = book_month_ends(workspace)
    return add_months(last, -target.horizon_months, anchor_day=31)


def train_from_book(
    workspace: Workspace,
    *,
    now: datetime,
    kind: str = "scorecard",
    observation: date | None = None,
    target: TargetDefinition | None = None,
    development_offset_months: int = DEFAULT_DEVELOPMENT_OFFSET,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """``runoff model train``: develop on the book at ``observation − offset``, validate out of time at ``observation``."""
    if kind not in MODEL_KINDS:
        raise InvalidInput(
            f"`kind`: {kind!r} is not a model kind; expected one of {', '.join(MODEL_KINDS)}", field="kind"
        )
    definition = target or TargetDefinition()
    first, last = book_month_ends(workspace)
    oot = observation_month_end(observation) if observation is not None else default_observation(workspace, definition)
    check_window(as_of=oot, last_month_end=last, definition=definition)
    if development_offset_months < 1:
        raise InvalidInput(
            f"`development_offset_months`: {development_offset_months} is not allowed; expected at least 1",
            field="development_offset_months",
        )
    dev = add_months(oot, -development_offset_months, anchor_day=31)
    if dev < first:
        raise InvalidInput(
            f"`observation`: the development date {dev.isoformat()} ({development_offset_months} months before "
            f"{oot.isoformat()}) is before the book's first month end {first.isoformat()}; expected a later "
            "observation or a shorter offset",
            field="observation",
        )
    development = book_features(workspace, as_of=dev, target=definition, scheduler=scheduler, progress=progress)
    out_of_time = book_features(workspace, as_of=oot, target=definition, scheduler=scheduler, progress=progress)
    train, hold = _split(development, fraction=holdout, seed=seed)
    _check_two_classes(train, target="bad", sample=f"development ({dev.isoformat()})")
    model = fit_pd_model(
        train,
        kind=kind,
        features=FEATURE_NAMES,
        target="bad",
        trends=feature_trends(),
        categorical=categorical_features(),
        random_state=seed,
        params=params,
    )
    return _register(
        workspace,
        model,
        now=now,
        source="book",
        data_window={
            "observation": oot.isoformat(),
            "development_observation": dev.isoformat(),
            "out_of_time_observation": oot.isoformat(),
            "outcome_window_end": definition.window(oot)[1].isoformat(),
            "book_month_ends": [first.isoformat(), last.isoformat()],
            "holdout": holdout,
            "seed": seed,
        },
        target=definition.model_dump() | {"description": definition.describe()},
        train=train,
        target_column="bad",
        samples={"train": train, "holdout": hold, "out_of_time": out_of_time},
        dof={"train": 2},
    )


def read_development_file(path: Path) -> pl.DataFrame:
    """A development sample from CSV or Parquet; a clear error for anything else."""
    if not path.is_file():
        raise NotFound(f"`--data`: {path} does not exist", field="data")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=10_000, try_parse_dates=False)
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInput(f"`--data`: cannot read {path} ({exc})", field="data") from None
    raise InvalidInput(f"`--data`: {path.name} is not a CSV or Parquet file; expected .csv or .parquet", field="data")


def bad_flags(column: pl.Series, bad_value: str | None) -> pl.Series:
    """1 where ``column`` holds the bad value, else 0. Numbers compare as numbers (``--bad 1`` matches 1.0) and
    default to 1; true/false default to true; text must be named with ``--bad``."""
    name = column.name
    if column.null_count():
        raise InvalidInput(
            f"`--target`: column {name!r} has {column.null_count()} empty rows; expected an outcome on every row",
            field="target",
        )
    seen = sorted(column.cast(pl.String).unique().to_list())
    if column.dtype == pl.Boolean:
        wanted = "true" if bad_value is None else bad_value.strip().lower()
        if wanted not in ("true", "false", "1", "0"):
            raise InvalidInput(f"`--bad`: {bad_value!r} is not allowed for true/false column {name!r}", field="bad")
        flags = column == (wanted in ("true", "1"))
    elif column.dtype.is_numeric():
        if bad_value is None and not column.cast(pl.Float64).is_in([0.0, 1.0]).all():
            raise InvalidInput(
                f"`--bad`: column {name!r} holds {seen[:6]}, not just 0 and 1; say which value means default with "
                "--bad VALUE",
                field="bad",
            )
        try:
            number = 1.0 if bad_value is None else float(bad_value)
        except ValueError:
            raise InvalidInput(
                f"`--bad`: {bad_value!r} is not a number; column {name!r} holds numbers such as {seen[:6]}", field="bad"
            ) from None
        flags = column.cast(pl.Float64) == number
        if not flags.any():
            raise InvalidInput(
                f"`--bad`: {number:g} is not a value of column {name!r}; expected one of {seen[:10]}", field="bad"
            )
    else:
        if bad_value is None:
            raise InvalidInput(
                f"`--bad`: column {name!r} holds {seen[:6]}; say which value means default with --bad VALUE",
                field="bad",
            )
        if bad_value not in seen:
            raise InvalidInput(
                f"`--bad`: {bad_value!r} is not a value of column {name!r}; expected one of {seen[:10]}", field="bad"
            )
        flags = column.cast(pl.String) == bad_value
    return flags.cast(pl.Int8).alias("bad")


def train_from_file(
    workspace: Workspace,
    *,
    now: datetime,
    path: Path,
    target_column: str,
    bad_value: str | None = None,
    kind: str = "scorecard",
    features: Sequence[str] | None = None,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> TrainResult:
    """``runoff model train --data FILE --target COLUMN [--bad VALUE]``: the same workflow on a lender's sample."""
    if kind not in MODEL_KINDS:
        raise InvalidInput(
            f"`kind`: {kind!r} is not a model kind; expected one of {', '.join(MODEL_KINDS)}", field="kind"
        )
    data = read_development_file(path)
    if data.height == 0:
        raise InvalidInput(f"`--data`: {path.name} has no rows; expected a development sample", field="data")
    if target_column not in data.columns:
        raise InvalidInput(
            f"`--target`: {target_column!r} is not a column of {path.name}; expected one of {data.columns[:20]}",
            field="target",
        )
    y = bad_flags(data.get_column(target_column), bad_value)
    names = list(features) if features is not None else [
        c for c in data.columns if c != target_column and c.lower() not in ID_COLUMNS and not c.lower().endswith("_id")
    ]  # fmt: skip
    if not names:
        raise InvalidInput(f"`--data`: {path.name} has no feature columns besides {target_column!r}", field="data")
    frame = data.select(names).with_columns(y)
    train, hold = _split(frame, fraction=holdout, seed=seed)
    _check_two_classes(train, target="bad", sample="training")
    model = fit_pd_model(train, kind=kind, features=names, target="bad", random_state=seed, params=params)
    return _register(
        workspace,
        model,
        now=now,
        source="file",
        data_window={"file": str(path.resolve()), "rows": data.height, "holdout": holdout, "seed": seed,
                     "file_sha256": training_data_sha256(data)},
        target={"column": target_column, "bad_value": bad_value, "description": f"{target_column} = {bad_value}"},
        train=train,
        target_column="bad",
        samples={"train": train, "holdout": hold},
        dof={"train": 2},
    )  # fmt: skip


# --- validation ------------------------------------------------------------------------------------------------


def _stored_baseline(record: ModelRecord) -> tuple[Baseline, dict[str, Baseline]] | None:
    data = getattr(record, "baselines", None) or (record.model_extra or {}).get("baselines")
    if not data:
        return None
    return Baseline.from_dict(data["score"]), {k: Baseline.from_dict(v) for k, v in data["features"].items()}


def validate_model(
    workspace: Workspace,
    *,
    version: str | None = None,
    observation: date | None = None,
    data: Path | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``runoff model validate``: the model on a sample with known outcomes, against its training baselines.

    A book model is validated at ``observation`` (default: its out-of-time date); a file model on ``data`` (the
    same columns) or, without it, its stored holdout validation is returned.
    """
    registry = ModelRegistry(workspace)
    model, record = registry.load(version)
    baseline = _stored_baseline(record)
    if record.source == "book":
        definition = TargetDefinition.model_validate(
            {k: v for k, v in record.target.items() if k in TargetDefinition.model_fields}
        )
        obs = observation_month_end(observation) if observation else date.fromisoformat(
            record.data_window["out_of_time_observation"]
        )  # fmt: skip
        _, last = book_month_ends(workspace)
        check_window(as_of=obs, last_month_end=last, definition=definition)
        frame = book_features(workspace, as_of=obs, target=definition, scheduler=scheduler, progress=progress)
        sample = f"out_of_time {obs.isoformat()}"
        name = f"validation-{obs.isoformat()}.json"
    elif data is not None:
        raw = read_development_file(data)
        column = record.target.get("column")
        if column not in raw.columns:
            raise InvalidInput(f"`--data`: the model's target column {column!r} is not in {data.name}", field="data")
        frame = raw.with_columns(bad_flags(raw.get_column(column), record.target.get("bad_value")))
        sample = f"file {data.name}"
        name = f"validation-{data.stem}.json"
    else:
        stored = registry.read_document(record.version, VALIDATION_FILE)
        return {"version": record.version, "kind": record.kind, "stored": True, "reports": stored}
    _check_two_classes(frame, target="bad", sample=sample)
    report = _report(model, frame, sample=sample, target="bad", baseline=baseline, dof_offset=0)
    out = {"version": record.version, "kind": record.kind, "stored": False, "summary": _summary(report),
           "report": report.as_dict()}  # fmt: skip
    registry.write_document(record.version, name, out)
    return out


# --- scoring ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreTask:
    root: str
    partition: int
    as_of: date
    version: str
    top: int
    default_dpd: int = 90


def score_partition_task(task: ScoreTask) -> dict[str, Any]:
    """Score one partition's customers and write its part of the ``scores`` table; returns sums for the summary."""
    workspace = Workspace(Path(task.root))
    model, _ = ModelRegistry(workspace).load(task.version)
    features = features_partition_task(FeatureTask(task.root, task.partition, task.as_of))
    if features.height == 0:
        _write_scores(workspace, task.partition, _empty_scores(task.top), task.as_of)
        return {"rows": 0, "pd_sum": 0.0, "in_default": 0, "scores": np.zeros(0)}
    scored = model.score_frame(features, keys=("customer_id",), top=task.top)
    in_default = features.get_column("dpd_now").fill_null(0) >= task.default_dpd
    out = scored.with_columns(
        pl.lit(features.get_column("as_of")[0]).alias("as_of"),
        pl.lit(task.version).alias("model_version"),
        pl.Series("in_default", in_default),
        pl.col("pd").alias("pd_model"),
        pl.when(pl.Series(in_default)).then(1.0).otherwise(pl.col("pd")).alias("pd"),
    )
    ordered = ["customer_id", "as_of", "model_version", "pd", "pd_model", "score", "in_default"]
    out = out.select(ordered + [c for c in out.columns if c not in ordered])
    _write_scores(workspace, task.partition, out, task.as_of)
    return {
        "rows": out.height,
        "pd_sum": float(out.get_column("pd").sum()),
        "in_default": int(in_default.sum()),
        "scores": out.get_column("score").to_numpy(),
    }


def _write_scores(workspace: Workspace, partition: int, frame: pl.DataFrame, as_of: date) -> None:
    """Replace this date's scores in the partition and keep the other dates' (score drift needs the history)."""
    path = workspace.partition_path(SCORES_TABLE, partition)
    if path.is_file():
        kept = pl.read_parquet(path).filter(pl.col("as_of") != as_of)
        frame = pl.concat([kept, frame], how="diagonal_relaxed").sort("as_of", "customer_id")
    workspace.write_partition(SCORES_TABLE, partition, frame)


def _empty_scores(top: int) -> pl.DataFrame:
    schema: dict[str, Any] = {"customer_id": pl.Int64, "as_of": pl.Date, "model_version": pl.String,
                              "pd": pl.Float64, "pd_model": pl.Float64, "score": pl.Float64, "in_default": pl.Boolean}  # fmt: skip
    for k in range(1, top + 1):
        schema |= {f"reason_{k}": pl.String, f"reason_{k}_points": pl.Float64}
    return pl.DataFrame(schema=schema)


def _merge_scores(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    rows = sum(p["rows"] for p in parts)
    scores = np.concatenate([p["scores"] for p in parts]) if parts else np.zeros(0)
    quantiles = np.quantile(scores, [0.1, 0.5, 0.9]).tolist() if scores.size else [None, None, None]
    return {
        "rows": rows,
        "mean_pd": sum(p["pd_sum"] for p in parts) / rows if rows else None,
        "in_default": sum(p["in_default"] for p in parts),
        "score_p10": quantiles[0],
        "score_median": quantiles[1],
        "score_p90": quantiles[2],
    }


def score_book(
    workspace: Workspace,
    *,
    version: str | None = None,
    as_of: date | None = None,
    top: int = 3,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``runoff score``: every customer with an active loan at ``as_of`` (default: the last month end) scored by
    the model ``version`` (default: the newest) into the ``scores`` table, which names the model version.

    The table keeps one set of rows per ``as_of`` (rescoring a date replaces that date's rows), so the early
    warning can follow the PD distribution's drift from month to month."""
    record = ModelRegistry(workspace).record(version)
    if record.source != "book":
        raise InvalidInput(
            f"`version`: {record.version} was trained on a file ({record.data_window.get('file')}), not on the "
            "book's features; train a book model with `runoff model train` to score the book",
            field="version",
        )
    _, last = book_month_ends(workspace)
    when = observation_month_end(as_of) if as_of is not None else last
    root = str(workspace.root.resolve())
    partitions = book_partitions(workspace)
    tasks = [ScoreTask(root, p, when, record.version, top) for p in partitions]
    summary = run_partitions(score_partition_task, tasks, _merge_scores, scheduler=scheduler, progress=progress)
    if summary["rows"] == 0:
        raise InvalidInput(
            f"`as_of`: no customer has an active loan at {when.isoformat()}; expected a date inside the book",
            field="as_of",
        )
    return {"model_version": record.version, "kind": record.kind, "as_of": when.isoformat(),
            "table": str(workspace.table_dir(SCORES_TABLE)), **summary}  # fmt: skip


# --- stress ----------------------------------------------------------------------------------------------------


def stress_book(
    workspace: Workspace,
    scenario_path: Path,
    *,
    version: str | None = None,
    as_of: date | None = None,
    segment_by: Sequence[str] | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``runoff stress SCENARIO.yaml``: the scenario on the book's customers at ``as_of`` with model ``version``.

    Writes ``runs/stress/<scenario>-<date>.json`` (summary) and ``.parquet`` (per customer).
    """
    if not scenario_path.is_file():
        raise NotFound(f"`scenario`: {scenario_path} does not exist", field="scenario")
    scenario = load_scenario(scenario_path.read_text(encoding="utf-8"), source=scenario_path.name)
    registry = ModelRegistry(workspace)
    model, record = registry.load(version)
    if record.source != "book":
        raise InvalidInput(
            f"`version`: {record.version} was trained on a file, not on the book's features; stress needs a book model",
            field="version",
        )
    _, last = book_month_ends(workspace)
    when = observation_month_end(as_of) if as_of is not None else last
    features = book_features(workspace, as_of=when, scheduler=scheduler, progress=progress)
    result = run_stress(features, scenario, model.predict_pd, segment_by=segment_by)
    out = stress_summary(result, model_version=record.version, as_of=when)
    folder = workspace.root / "runs" / STRESS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{scenario.name}-{when.isoformat()}"
    result.customers.with_columns(pl.lit(record.version).alias("model_version")).write_parquet(
        folder / f"{stem}.parquet"
    )
    out["files"] = [str(folder / f"{stem}.json"), str(folder / f"{stem}.parquet")]
    (folder / f"{stem}.json").write_text(_json(out), encoding="utf-8")
    return out


def stress_summary(result: StressResult, *, model_version: str, as_of: date) -> dict[str, Any]:
    return {"model_version": model_version, "as_of": as_of.isoformat(), **result.as_dict()}


def _json(data: Any) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, date | datetime):
            return value.isoformat()
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(type(value).__name__)

    return json.dumps(data, ensure_ascii=False, indent=2, default=default) + "\n"


# --- the assessment report's PD and stress sections ------------------------------------------------------------

_SECTION_TITLES = {
    "score-distribution": ("评分分布", "Score distributions"),
    "roc": ("ROC 曲线", "ROC curve"),
    "ks": ("KS 曲线", "KS curve"),
    "calibration": ("校准", "Calibration"),
    "stress": ("还款能力压力测试", "Repayment-ability stress tests"),
}
_REPORT_METRICS = ("count", "bads", "auc", "gini", "ks", "brier", "hosmer_lemeshow_p", "score_psi")


def _figure(title: str, *, x: str, y: str, percent_y: bool = True) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title, template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 60, "b": 50},
        xaxis={"title": x}, yaxis={"title": y, "tickformat": ".0%" if percent_y else ","},
        legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return fig


def _newest_by_kind(registry: ModelRegistry) -> list[tuple[ModelRecord, dict[str, Any]]]:
    """The newest model of each kind with its training-time validation (out-of-time, else holdout)."""
    chosen: dict[str, tuple[ModelRecord, dict[str, Any]]] = {}
    for record in registry.records():
        try:
            reports = registry.read_document(record.version, VALIDATION_FILE)
        except NotFound:
            continue
        chosen[f"{record.kind}-{record.source}"] = (record, reports)
    return list(chosen.values())


def report_sections(workspace: Workspace, *, as_of: date) -> list[ReportSection]:
    """The PD and stress slots of ``reports/assessment.html`` (score distributions, ROC, KS, calibration,
    stress), from the registry's newest model of each kind and the newest run of each stress scenario."""
    sections: list[ReportSection] = []
    models = _newest_by_kind(ModelRegistry(workspace)) if (workspace.root / "models").is_dir() else []
    if models:
        roc = _figure("ROC (validation sample)", x="false positive rate 误拒率", y="true positive rate 命中率")
        roc.add_trace(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random", line={"dash": "dot", "color": "#999"})
        )
        ks = _figure("KS: cumulative bads and goods by PD rank", x="population share 人群占比", y="cumulative share")
        cal = _figure("Observed vs predicted default rate by decile", x="mean PD 预测违约率", y="observed 实际违约率")
        dist = _figure("Customers by score band", x="score 评分", y="share of customers", percent_y=True)
        rows, tables, by_bucket = [], [], []
        top = 0.0
        for record, reports in models:
            label = f"{record.version} {record.kind}"
            sample = reports.get("out_of_time") or reports.get("holdout") or {}
            if not sample:
                continue
            t = sample["tables"]
            curve = pl.DataFrame(t["roc"])
            roc.add_trace(go.Scatter(x=curve["false_positive_rate"], y=curve["true_positive_rate"], mode="lines",
                                     name=f"{label} AUC {sample['auc']:.3f}"))  # fmt: skip
            k = pl.DataFrame(t["ks_curve"])
            ks.add_trace(go.Scatter(x=k["population_share"], y=k["bad_share"], mode="lines", name=f"{label} bads"))
            ks.add_trace(go.Scatter(x=k["population_share"], y=k["good_share"], mode="lines",
                                    name=f"{label} goods (KS {sample['ks']:.3f})", line={"dash": "dash"}))  # fmt: skip
            c = pl.DataFrame(t["calibration"])
            top = max(top, float(np.max(c["mean_pd"].to_numpy())), float(np.max(c["observed_rate"].to_numpy())))
            cal.add_trace(go.Scatter(x=c["mean_pd"], y=c["observed_rate"], mode="lines+markers", name=label))
            d = pl.DataFrame(t["score_distribution"])
            dist.add_trace(go.Bar(x=d["band"], y=d["share"], name=label))
            if t.get("score_by_segment"):
                caption = f"{label}: score by delinquency bucket at the observation date ({sample['sample']})"
                by_bucket.append(ReportTable(pl.DataFrame(t["score_by_segment"]), caption=caption))
            for name, rep in reports.items():
                rows.append({"model": label, "sample": name} | {m: rep.get(m) for m in _REPORT_METRICS})
            tables.append(ReportTable(c.select("group", "count", "mean_pd", "observed_rate", "observed_bads",
                                               "expected_bads", "binomial_p_value"),
                                      caption=f"{label}: calibration by decile ({sample['sample']})"))  # fmt: skip
        cal.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="perfect", line={"dash": "dot"}))
        metrics = ReportTable(pl.DataFrame(rows), caption="AUC, Gini, KS, Brier, Hosmer–Lemeshow p, score PSI")
        note = "Validation samples: out of time for book models, holdout for file models; PSI against training."
        for key, figs, tabs in (
            ("score-distribution", (dist,), tuple(by_bucket)),
            ("roc", (roc,), (metrics,)),
            ("ks", (ks,), ()),
            ("calibration", (cal,), tuple(tables)),
        ):
            zh, en = _SECTION_TITLES[key]
            sections.append(
                ReportSection(key, zh, en, figures=figs, tables=tabs, notes=(note,) if key == "roc" else ())
            )
    runs = _stress_runs(workspace, as_of=as_of)
    if runs:
        el = _figure("Expected loss by scenario 预期损失", x="scenario", y="yuan", percent_y=False)
        aff = _figure("Debt-service ratio distribution 还款收入比", x="installments / income", y="share of customers")
        el.add_trace(go.Bar(x=[r["scenario"]["name"] for r in runs], y=[r["totals"]["el_base_yuan"] for r in runs],
                            name="base"))  # fmt: skip
        el.add_trace(go.Bar(x=[r["scenario"]["name"] for r in runs],
                            y=[r["totals"]["el_stressed_yuan"] for r in runs], name="stressed"))  # fmt: skip
        first = pl.DataFrame(runs[0]["affordability"])
        aff.add_trace(go.Bar(x=first["band"], y=first["share_base"], name="base"))
        for r in runs:
            a = pl.DataFrame(r["affordability"])
            aff.add_trace(go.Bar(x=a["band"], y=a["share_stressed"], name=r["scenario"]["name"]))
        keep = ["customers", "ead_yuan", "pd_base_ead_weighted", "pd_stressed_ead_weighted", "el_base_yuan",
                "el_stressed_yuan", "el_base_rate", "el_stressed_rate"]  # fmt: skip
        tables = [
            ReportTable(
                pl.DataFrame(r["by_segment"]).select(
                    [c for c in pl.DataFrame(r["by_segment"]).columns if c not in r["totals"]] + keep
                ),
                caption=f"{r['scenario']['name']} at {r['as_of']} (model {r['model_version']}): "
                f"{r['scenario'].get('description', '')}",
            )
            for r in runs
        ]
        zh, en = _SECTION_TITLES["stress"]
        sections.append(ReportSection("stress", zh, en, figures=(el, aff), tables=tuple(tables)))
    return sections


def _stress_runs(workspace: Workspace, *, as_of: date) -> list[dict[str, Any]]:
    """The newest run of each scenario on or before ``as_of``."""
    folder = workspace.root / "runs" / STRESS_DIR
    newest: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        run = json.loads(path.read_text(encoding="utf-8"))
        if date.fromisoformat(run["as_of"]) <= as_of:
            name = run["scenario"]["name"]
            if name not in newest or run["as_of"] >= newest[name]["as_of"]:
                newest[name] = run
    return list(newest.values())
