"""Gradient-boosted PD (梯度提升违约模型): LightGBM with monotone constraints, as a scikit-learn estimator.

Monotone constraints keep the model's answer in line with credit sense — more days past due never lowers
the PD, a higher payment ratio never raises it — so its reason codes can be shown to a customer and a
regulator. ``+1`` means the log-odds of bad may only rise with the feature, ``-1`` only fall. Early
stopping holds out ``validation_fraction`` of the rows (drawn with ``random_state``). Reason codes come
from LightGBM's exact TreeSHAP contributions (``pred_contrib``), which add up to the raw log-odds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from runoff.risk.pd import ModelInputError, binary_training_data

FloatArray = npt.NDArray[np.float64]


class GradientBoostedPD(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """LightGBM binary classifier for PD with monotone constraints, early stopping and a points scale.

    Hyperparameters (keyword-only, stored as given, checked in :meth:`fit`): the boosting's ``n_estimators``,
    ``learning_rate``, ``num_leaves``, ``max_depth``, ``min_child_samples``, ``subsample``,
    ``colsample_bytree``, ``reg_lambda``, ``max_bin``; ``monotone_constraints`` (feature name or column index →
    −1, 0 or +1, or one value per column); ``categorical_features`` (names or indices of code columns);
    ``early_stopping_rounds`` and ``validation_fraction`` (0 turns early stopping off); ``n_jobs`` (threads,
    None = LightGBM's default); ``random_state``; ``base_points``, ``base_odds``, ``pdo`` for the points score.

    The defaults grow many small trees (7 leaves, 63 bins): behaviour data are close to additive, and on the
    benchmark sample small trees reach the AUC of 31-leaf trees while predicting about 3× and explaining
    (TreeSHAP) about 20× faster — what scoring ten million customers with reason codes needs.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.1,
        num_leaves: int = 7,
        max_depth: int = -1,
        min_child_samples: int = 200,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        max_bin: int = 63,
        monotone_constraints: Mapping[str | int, int] | Sequence[int] | None = None,
        categorical_features: Sequence[str | int] | None = None,
        early_stopping_rounds: int | None = 30,
        validation_fraction: float = 0.1,
        n_jobs: int | None = None,
        random_state: int | None = None,
        base_points: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.monotone_constraints = monotone_constraints
        self.categorical_features = categorical_features
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.base_points = base_points
        self.base_odds = base_odds
        self.pdo = pdo

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    def _check_params(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("n_estimators", int(self.n_estimators) >= 1, "an integer ≥ 1"),
            ("learning_rate", float(self.learning_rate) > 0, "a number > 0"),
            ("num_leaves", int(self.num_leaves) >= 2, "an integer ≥ 2"),
            ("min_child_samples", int(self.min_child_samples) >= 1, "an integer ≥ 1"),
            ("subsample", 0.0 < float(self.subsample) <= 1.0, "a share in (0, 1]"),
            ("colsample_bytree", 0.0 < float(self.colsample_bytree) <= 1.0, "a share in (0, 1]"),
            ("validation_fraction", 0.0 <= float(self.validation_fraction) < 0.5, "a share in [0, 0.5)"),
            ("base_odds", float(self.base_odds) > 0, "odds > 0 (good:bad)"),
            ("pdo", float(self.pdo) != 0, "a non-zero number of points"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ModelInputError(f"`{name}`: {getattr(self, name)!r} is not allowed; expected {expected}")

    def _constraints(self, names: list[str]) -> list[int]:
        spec = self.monotone_constraints
        out = [0] * len(names)
        if spec is None:
            return out
        if isinstance(spec, Mapping):
            for key, value in spec.items():
                if isinstance(key, str):
                    if key in names:
                        out[names.index(key)] = int(value)
                elif 0 <= int(key) < len(names):
                    out[int(key)] = int(value)
                else:
                    raise ModelInputError(
                        f"`monotone_constraints`: column {key} is not allowed; expected 0 to {len(names) - 1}"
                    )
        else:
            values = list(spec)
            if len(values) != len(names):
                raise ModelInputError(
                    f"`monotone_constraints`: {len(values)} values for {len(names)} features; expected one per feature"
                )
            out = [int(v) for v in values]
        bad = [v for v in out if v not in (-1, 0, 1)]
        if bad:
            raise ModelInputError(f"`monotone_constraints`: {bad[0]} is not allowed; expected -1, 0 or 1")
        return out

    def _categorical(self, names: list[str]) -> list[int]:
        out = []
        for key in self.categorical_features or ():
            if isinstance(key, str):
                if key in names:
                    out.append(names.index(key))
            elif 0 <= int(key) < len(names):
                out.append(int(key))
            else:
                raise ModelInputError(
                    f"`categorical_features`: column {key} is not allowed; expected 0 to {len(names) - 1}"
                )
        return sorted(set(out))

    def fit(self, X: Any, y: Any) -> GradientBoostedPD:
        """Boost trees on the log-odds of bad under the monotone constraints, stopping early on held-out rows."""
        import lightgbm as lgb  # heavy import: only when fitting

        self._check_params()
        X_arr, y01, names = binary_training_data(self, X, y)
        all_missing = [names[j] for j in range(X_arr.shape[1]) if np.isnan(X_arr[:, j]).all()]
        if all_missing:
            raise ModelInputError(
                f"`{all_missing[0]}`: every one of its {X_arr.shape[0]} values is missing; "
                "expected some values (drop the feature or fill it)"
            )
        self.feature_names_ = names
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, 2**31 - 1))
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "max_depth": int(self.max_depth),
            "min_data_in_leaf": int(self.min_child_samples),
            "bagging_fraction": float(self.subsample),
            "bagging_freq": 1 if float(self.subsample) < 1.0 else 0,
            "feature_fraction": float(self.colsample_bytree),
            "lambda_l2": float(self.reg_lambda),
            "max_bin": int(self.max_bin),
            "monotone_constraints": self._constraints(names),
            "monotone_constraints_method": "intermediate",
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            "min_data_in_bin": 1,
        }
        if self.n_jobs is not None:
            params["num_threads"] = int(self.n_jobs)
        categorical = self._categorical(names)
        use_valid = bool(self.early_stopping_rounds) and float(self.validation_fraction) > 0 and y01.size >= 200
        if use_valid:
            order = rng.permutation(y01.size)
            n_valid = max(round(y01.size * float(self.validation_fraction)), 1)
            valid_idx, train_idx = np.sort(order[:n_valid]), np.sort(order[n_valid:])
            if y01[valid_idx].min() == y01[valid_idx].max():
                use_valid = False
        if use_valid:
            train = lgb.Dataset(X_arr[train_idx], y01[train_idx], feature_name=names, categorical_feature=categorical,
                                free_raw_data=True, params={"max_bin": int(self.max_bin), "verbosity": -1})  # fmt: skip
            valid = lgb.Dataset(X_arr[valid_idx], y01[valid_idx], reference=train)
            booster = lgb.train(
                params,
                train,
                num_boost_round=int(self.n_estimators),
                valid_sets=[valid],
                callbacks=[lgb.early_stopping(int(self.early_stopping_rounds or 0), verbose=False)],
            )
            self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        else:
            train = lgb.Dataset(X_arr, y01, feature_name=names, categorical_feature=categorical,
                                params={"max_bin": int(self.max_bin), "verbosity": -1})  # fmt: skip
            booster = lgb.train(params, train, num_boost_round=int(self.n_estimators))
            self.best_iteration_ = booster.current_iteration()
        self.booster_ = booster
        self.monotone_constraints_ = params["monotone_constraints"]
        self.factor_ = float(self.pdo) / math.log(2.0)
        self.offset_ = float(self.base_points) - self.factor_ * math.log(float(self.base_odds))
        return self

    def _checked(self, X: Any) -> FloatArray:
        check_is_fitted(self, "booster_")
        try:
            arr: FloatArray = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        except ValueError as exc:
            raise ModelInputError(f"scoring data: {exc}") from exc
        return arr

    def decision_function(self, X: Any) -> FloatArray:
        """Log-odds of bad for each row."""
        arr = self._checked(X)
        raw: FloatArray = np.asarray(
            self.booster_.predict(arr, num_iteration=self.best_iteration_, raw_score=True), dtype=np.float64
        )
        return raw

    def predict_proba(self, X: Any) -> FloatArray:
        """Columns: P(classes_[0]), P(classes_[1]); ``classes_[1]`` is the bad (event) class."""
        p = expit(self.decision_function(X))
        out: FloatArray = np.column_stack([1.0 - p, p])
        return out

    def predict(self, X: Any) -> Any:
        """The bad class where the PD exceeds one half, else the good class."""
        bad = self.decision_function(X) > 0
        return self.classes_[bad.astype(np.int64)]

    def contributions(self, X: Any) -> FloatArray:
        """TreeSHAP contribution of each feature to the log-odds of bad, plus the expected value as last column.

        Each row sums to :meth:`decision_function` (LightGBM's ``pred_contrib``).
        """
        arr = self._checked(X)
        out: FloatArray = np.asarray(
            self.booster_.predict(arr, num_iteration=self.best_iteration_, pred_contrib=True), dtype=np.float64
        )
        return out

    def score_points(self, X: Any) -> FloatArray:
        """Points on the scorecard's scale: offset − factor · log-odds of bad (higher = safer)."""
        out: FloatArray = self.offset_ - self.factor_ * self.decision_function(X)
        return out

    def model_text(self) -> str:
        """The booster in LightGBM's own text format (portable, readable without Python)."""
        check_is_fitted(self, "booster_")
        text: str = self.booster_.model_to_string(num_iteration=self.best_iteration_)
        return text
