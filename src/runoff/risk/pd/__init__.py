"""Probability of default (违约概率): a points scorecard and a monotone LightGBM, their reason codes and validation.

Estimators follow scikit-learn's API (``fit``/``predict_proba``, keyword-only hyperparameters stored as
given, learned attributes ending in ``_``). Input mistakes raise :class:`ModelInputError`, which is both a
:class:`runoff.errors.InvalidInput` (the CLI renders it as one line) and a ``ValueError`` (what
scikit-learn's estimator checks expect).
"""

from __future__ import annotations

from runoff.errors import InvalidInput


class ModelInputError(InvalidInput, ValueError):
    """Training or scoring data a PD model cannot use: one class only, no rows, a feature all missing, ..."""

    code = "model.input_invalid"


__all__ = ["ModelInputError"]
