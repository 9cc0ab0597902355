"""A small synthetic development sample shared by the PD tests: a latent risk drives the features and the target."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.special import expit


def applications(n: int, seed: int) -> pl.DataFrame:
    """``n`` customers: delinquency count (riskier up), payment ratio (safer up), income (safer up), a U-shaped
    age, a categorical channel, a noise column and ``bad`` (1 = default, about 10 %)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    late = rng.poisson(np.exp(-1.5 + 0.9 * z))
    ratio = np.clip(1.0 - 0.2 * np.maximum(z, 0) + rng.normal(0, 0.1, n), 0, 1.5)
    ratio[rng.random(n) < 0.05] = np.nan
    income = np.round(np.exp(8.5 - 0.3 * z + rng.normal(0, 0.4, n)))
    age = np.clip(np.round(rng.normal(35, 9, n)), 18, 70)
    channel = rng.choice(["app", "checkout", "partner"], size=n, p=[0.5, 0.3, 0.2])
    channel_effect = np.select([channel == "partner", channel == "app"], [0.6, 0.0], -0.2)
    logit = -2.6 + 1.2 * z + 0.003 * (age - 38) ** 2 + channel_effect
    bad = (rng.random(n) < expit(logit)).astype(np.int8)
    return pl.DataFrame(
        {
            "late_payments": late.astype(np.float64),
            "payment_ratio": ratio,
            "income": income,
            "age": age,
            "channel": channel,
            "noise": rng.normal(size=n),
            "bad": bad,
        }
    )


NUMERIC = ["late_payments", "payment_ratio", "income", "age", "noise"]
TRENDS = {"late_payments": "ascending", "payment_ratio": "descending", "income": "descending"}


@pytest.fixture(scope="session")
def dev_sample() -> pl.DataFrame:
    return applications(6000, seed=1)


@pytest.fixture(scope="session")
def holdout_sample() -> pl.DataFrame:
    return applications(4000, seed=2)
