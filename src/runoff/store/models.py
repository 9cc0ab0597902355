"""The model registry (模型库): versioned PD models in ``<workspace>/models/``.

Each version is a folder ``models/vNNNN/`` holding the fitted model (``model.joblib``; a LightGBM model
also as ``model.txt`` in LightGBM's own text format, a scorecard also as ``card.json``), ``metadata.json``
(version, kind, creation time, data window, target, features, hyperparameters, metrics, the SHA-256 of the
training data and of the artifact, library versions) and any later documents (validation runs). A version
is written in a temporary folder and renamed into place, so a crash never leaves half a model, and a
version once written is never changed: retraining makes a new one. Loading checks the artifact's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from runoff.errors import ConfigError, InvalidInput, NotFound
from runoff.risk.pd.model import PDModel
from runoff.store.workspace import Workspace

MODELS_DIR = "models"
METADATA = "metadata.json"
ARTIFACT = "model.joblib"
_VERSION_DIR = re.compile(r"^v(\d{4,})$")
LIBRARIES = ("runoff", "scikit-learn", "lightgbm", "optbinning", "polars", "numpy")


def normalize_version(version: str | int) -> str:
    """``3``, ``"3"``, ``"v3"`` and ``"v0003"`` all name version ``v0003``."""
    text = str(version).strip().lower().removeprefix("v")
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(
            f"`version`: {version!r} is not a model version; expected v0001, v2, 3, ... (see `runoff model list`)",
            field="version",
        )
    return f"v{int(text):04d}"


def training_data_sha256(frame: pl.DataFrame) -> str:
    """SHA-256 of a frame's column names, types and values in row order (nulls marked apart from values)."""
    digest = hashlib.sha256()
    digest.update(f"{frame.height}\n".encode())
    for name in frame.columns:
        series = frame.get_column(name)
        digest.update(f"{name}\x1f{series.dtype}\x1e".encode())
        digest.update(series.is_null().to_numpy().tobytes())
        if series.dtype.is_numeric() or series.dtype == pl.Boolean:
            values = series.cast(pl.Float64).fill_null(0.0).to_numpy()
            digest.update(values.tobytes())
        elif series.dtype.is_temporal():
            digest.update(series.to_physical().cast(pl.Int64).fill_null(0).to_numpy().tobytes())
        else:
            digest.update("\x1f".join(series.cast(pl.String).fill_null("").to_list()).encode())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class ModelRecord(BaseModel):
    """A model version's metadata (``metadata.json``)."""

    model_config = ConfigDict(extra="allow")

    version: str
    kind: str
    created_at: datetime
    source: str = Field(description="book (a workspace's performance) or file (an external data set)")
    data_window: dict[str, Any] = Field(default_factory=dict)
    target: dict[str, Any] = Field(default_factory=dict)
    features: list[str]
    selected_features: list[str] = Field(default_factory=list)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_rows: int
    training_bads: int
    training_data_sha256: str
    artifact: str = ARTIFACT
    artifact_sha256: str = ""
    files: list[str] = Field(default_factory=list)
    libraries: dict[str, str] = Field(default_factory=dict)
    description: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """One line's worth for listings: version, kind, when, window, key metrics."""
        oot = self.metrics.get("out_of_time") or self.metrics.get("holdout") or {}
        return {
            "version": self.version,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "source": self.source,
            "observation": self.data_window.get("observation"),
            "features": len(self.selected_features or self.features),
            "training_rows": self.training_rows,
            "auc": oot.get("auc"),
            "ks": oot.get("ks"),
            "sample": oot.get("sample"),
        }


@dataclass(frozen=True, slots=True)
class ModelRegistry:
    """The versioned models of one workspace."""

    workspace: Workspace

    @property
    def root(self) -> Path:
        return self.workspace.root / MODELS_DIR

    def folder(self, version: str | int) -> Path:
        return self.root / normalize_version(version)

    def versions(self) -> list[str]:
        """Every saved version, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def records(self) -> list[ModelRecord]:
        return [self.record(v) for v in self.versions()]

    def record(self, version: str | int | None = None) -> ModelRecord:
        """The metadata of ``version`` (default: the newest)."""
        name = self._resolve(version)
        path = self.root / name / METADATA
        try:
            return ModelRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the model's metadata ({exc})") from None

    def _resolve(self, version: str | int | None) -> str:
        available = self.versions()
        if version is None:
            if not available:
                raise NotFound(f"no model in {self.root}; train one first with `runoff model train`", field="version")
            return available[-1]
        name = normalize_version(version)
        if name not in available:
            listed = ", ".join(available) if available else "none"
            raise NotFound(f"`version`: {name} is not in {self.root}; expected one of: {listed}", field="version")
        return name

    def load(self, version: str | int | None = None) -> tuple[PDModel, ModelRecord]:
        """The fitted model and its metadata; refuses an artifact whose SHA-256 no longer matches."""
        record = self.record(version)
        path = self.root / record.version / record.artifact
        if not path.is_file():
            raise ConfigError(f"{path}: the model artifact is missing", field="version")
        actual = _file_sha256(path)
        if record.artifact_sha256 and actual != record.artifact_sha256:
            raise ConfigError(
                f"{path}: SHA-256 {actual[:12]}… does not match the recorded {record.artifact_sha256[:12]}…; "
                "the artifact was changed after it was saved — retrain instead of editing a saved model",
                field="version",
            )
        model = joblib.load(path)
        if not isinstance(model, PDModel):
            raise ConfigError(f"{path}: holds a {type(model).__name__}, expected a PD model")
        return model, record

    def save(self, model: PDModel, *, created_at: datetime, **fields: Any) -> ModelRecord:
        """Write ``model`` as the next version with its metadata (``fields`` fill :class:`ModelRecord`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            artifact = staging / ARTIFACT
            joblib.dump(model, artifact, compress=3)
            files = [ARTIFACT]
            text = getattr(model.estimator, "model_text", None)
            if callable(text):
                (staging / "model.txt").write_text(text(), encoding="utf-8")
                files.append("model.txt")
            card = getattr(model.estimator, "to_dict", None)
            if callable(card):
                (staging / "card.json").write_text(json.dumps(card(), indent=2, default=str), encoding="utf-8")
                files.append("card.json")
            while True:
                version = f"v{(int(self.versions()[-1][1:]) + 1) if self.versions() else 1:04d}"
                record = ModelRecord(
                    version=version,
                    kind=model.kind,
                    created_at=created_at,
                    features=list(model.features),
                    artifact=ARTIFACT,
                    artifact_sha256=_file_sha256(artifact),
                    files=[*files, METADATA],
                    libraries=library_versions(),
                    description=model.describe(),
                    **fields,
                )
                (staging / METADATA).write_text(record.model_dump_json(indent=2), encoding="utf-8")
                try:
                    os.rename(staging, self.root / version)
                except OSError:
                    if (self.root / version).exists():
                        continue  # another process took this number: take the next one
                    raise
                return record
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def write_document(self, version: str | int, name: str, data: Any) -> Path:
        """A JSON document beside a version (e.g. ``validation-2025-06-30.json``); metadata.json is never touched."""
        folder = self.root / self._resolve(version)
        if name in (METADATA, ARTIFACT) or "/" in name or not name.endswith(".json"):
            raise InvalidInput(f"`name`: {name!r} is not allowed; expected a new .json file name")
        target = folder / name
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target

    def read_document(self, version: str | int, name: str) -> Any:
        path = self.root / self._resolve(version) / name
        if not path.is_file():
            raise NotFound(f"{path} does not exist")
        return json.loads(path.read_text(encoding="utf-8"))
