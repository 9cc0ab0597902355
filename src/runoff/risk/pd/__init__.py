"""Probability of default (违约概率): a points scorecard and a monotone LightGBM, their reason codes and validation.

Estimators follow scikit-learn's API (``fit``/``predict_proba``, keyword-only hyperparameters stored as
given, learned attributes ending in ``_``). Input mistakes raise :class:`ModelInputError`, which is both a
:class:`runoff.errors.InvalidInput` (the CLI renders it as one line) and a ``ValueError`` (what
scikit-learn's estimator checks expect).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from runoff.errors import InvalidInput


class ModelInputError(InvalidInput, ValueError):
    """Training or scoring data a PD model cannot use: one class only, no rows, a feature all missing, ..."""

    code = "model.input_invalid"


def binary_training_data(
    estimator: Any, X: Any, y: Any
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[str]]:
    """Validate a development sample for a good/bad model: features as floats (missing allowed), exactly two
    classes (the second sorted is "bad", 1.0), and the feature names. Sets ``classes_`` on ``estimator``."""
    try:
        X_arr, y_arr = validate_data(estimator, X, y, dtype=np.float64, ensure_all_finite="allow-nan", y_numeric=False)
    except ValueError as exc:
        raise ModelInputError(f"training data: {exc}") from exc
    check_classification_targets(y_arr)
    estimator.classes_ = np.unique(y_arr)
    if estimator.classes_.size != 2:
        raise ModelInputError(
            f"`target`: {estimator.classes_.size} class(es) {estimator.classes_.tolist()[:5]} found; expected exactly "
            "two (good and bad). Only binary classification is supported."
        )
    y01 = (y_arr == estimator.classes_[1]).astype(np.float64)
    names = (
        [str(n) for n in estimator.feature_names_in_]
        if hasattr(estimator, "feature_names_in_")
        else [f"x{j}" for j in range(X_arr.shape[1])]
    )
    return X_arr, y01, names


__all__ = ["ModelInputError", "binary_training_data"]
