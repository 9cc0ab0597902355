"""The model registry: versions numbered in order, metadata with the data hash, artifacts checked on load."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from runoff.errors import ConfigError, InvalidInput, NotFound
from runoff.risk.pd.model import fit_pd_model
from runoff.store.models import ModelRegistry, normalize_version, training_data_sha256
from runoff.store.workspace import Workspace

WHEN = datetime(2025, 6, 30, 9, 0, tzinfo=UTC)


def _sample(n: int = 800, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pl.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "late": np.round(np.exp(x)),
            "city": rng.choice(["a", "b"], n),
            "bad": (rng.random(n) < 1 / (1 + np.exp(2.5 - x))).astype(np.int8),
        }
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(Workspace.init(tmp_path / "ws"))


def _save(registry: ModelRegistry, sample: pl.DataFrame, kind: str = "scorecard") -> object:
    model = fit_pd_model(
        sample, kind=kind, features=["late", "city"], params={"min_iv": 0.0} if kind == "scorecard" else {"n_jobs": 1}
    )
    return registry.save(
        model,
        created_at=WHEN,
        source="file",
        data_window={"file": "sample.csv"},
        training_rows=sample.height,
        training_bads=int(sample.get_column("bad").sum()),
        training_data_sha256=training_data_sha256(sample),
        metrics={"holdout": {"auc": 0.7, "ks": 0.3, "sample": "holdout"}},
    )


def test_versions_are_numbered_in_order_and_the_newest_is_the_default(registry: ModelRegistry) -> None:
    first = _save(registry, _sample())
    second = _save(registry, _sample(seed=1), kind="lightgbm")
    assert (first.version, second.version) == ("v0001", "v0002")  # type: ignore[attr-defined]
    assert registry.versions() == ["v0001", "v0002"]
    assert registry.record().version == "v0002"
    model, record = registry.load("1")
    assert record.kind == "scorecard"
    assert model.kind == "scorecard"


def test_metadata_records_window_features_metrics_hash_and_files(registry: ModelRegistry) -> None:
    sample = _sample()
    record = _save(registry, sample)
    on_disk = registry.record("v1")
    assert on_disk == record
    assert on_disk.training_data_sha256 == training_data_sha256(sample)
    assert on_disk.features == ["late", "city"]
    assert on_disk.data_window == {"file": "sample.csv"}
    assert on_disk.metrics["holdout"]["auc"] == 0.7
    assert on_disk.created_at == WHEN
    assert set(on_disk.files) == {"model.joblib", "card.json", "metadata.json"}
    assert on_disk.libraries["lightgbm"] != "not installed"
    folder = registry.folder(1)
    assert all((folder / f).is_file() for f in on_disk.files)


def test_a_lightgbm_version_also_keeps_the_text_model(registry: ModelRegistry) -> None:
    record = _save(registry, _sample(), kind="lightgbm")
    assert "model.txt" in record.files  # type: ignore[attr-defined]
    assert (registry.folder(1) / "model.txt").read_text().startswith("tree")


def test_the_loaded_model_scores_exactly_like_the_saved_one(registry: ModelRegistry) -> None:
    sample = _sample()
    model = fit_pd_model(sample, kind="scorecard", features=["late", "city"], params={"min_iv": 0.0})
    registry.save(model, created_at=WHEN, source="file", training_rows=1, training_bads=1, training_data_sha256="x")
    loaded, _ = registry.load()
    assert loaded.predict_pd(sample) == pytest.approx(model.predict_pd(sample), abs=0)


@pytest.mark.parametrize(
    ("change", "same"),
    [
        (lambda f: f, True),
        (lambda f: f.with_columns(pl.col("late") + 1e-9), False),
        (lambda f: f.reverse(), False),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("customer_id") == 1).then(None).otherwise(pl.col("city")).alias("city")
            ),
            False,
        ),
        (lambda f: f.rename({"late": "late2"}), False),
        (lambda f: f.with_columns(pl.col("bad").cast(pl.Int64)), False),
    ],
    ids=["unchanged", "one-value", "row-order", "a-null", "a-name", "a-type"],
)
def test_the_data_hash_changes_with_any_value_order_name_or_type(change: object, same: bool) -> None:
    frame = _sample()
    assert (training_data_sha256(change(frame)) == training_data_sha256(frame)) is same  # type: ignore[operator]


def test_a_tampered_artifact_is_refused(registry: ModelRegistry) -> None:
    _save(registry, _sample())
    artifact = registry.folder(1) / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="does not match the recorded"):
        registry.load(1)


def test_documents_sit_beside_a_version_without_touching_its_metadata(registry: ModelRegistry) -> None:
    _save(registry, _sample())
    before = (registry.folder(1) / "metadata.json").read_bytes()
    registry.write_document(1, "validation-2025-06-30.json", {"auc": 0.71})
    assert registry.read_document("v0001", "validation-2025-06-30.json") == {"auc": 0.71}
    assert (registry.folder(1) / "metadata.json").read_bytes() == before
    with pytest.raises(InvalidInput, match="`name`"):
        registry.write_document(1, "metadata.json", {})


def test_unknown_versions_and_an_empty_registry_are_clear_errors(registry: ModelRegistry) -> None:
    with pytest.raises(NotFound, match="runoff model train"):
        registry.load()
    _save(registry, _sample())
    with pytest.raises(NotFound, match=r"v0007 is not in .*expected one of: v0001"):
        registry.load(7)
    with pytest.raises(InvalidInput, match="not a model version"):
        normalize_version("latest!")


@pytest.mark.parametrize(("given", "name"), [(3, "v0003"), ("3", "v0003"), ("v3", "v0003"), ("V0012", "v0012")])
def test_version_spellings(given: object, name: str) -> None:
    assert normalize_version(given) == name  # type: ignore[arg-type]
