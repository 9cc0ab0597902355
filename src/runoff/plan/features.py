"""The account features a plan's segments are written over (分群特征), with their types and vocabularies.

One row per account (额度账户) as of a date: the worst delinquency of its open loans, its balance, its PD,
the product of its largest loan, months left, region and affordability (还款收入比). Segment expressions
(:mod:`runoff.plan.expressions`) may name only these features; money features are written in yuan in a
plan (``balance >= 5000``) and compared in integer fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runoff.portfolio.schemas import CITY_TIERS, METHODS
from runoff.servicing.delinquency import BUCKETS


class FeatureKind(StrEnum):
    """How a feature is compared: numbers by value, money in fen, ordinals by rank, categories by equality."""

    INTEGER = "integer"
    NUMBER = "number"
    MONEY = "money"  # yuan in a plan, Int64 fen in the feature table
    ORDINAL = "ordinal"  # an ordered vocabulary: <, >= compare ranks (bucket >= M2)
    CATEGORY = "category"  # a vocabulary without order: ==, !=, in
    TEXT = "text"  # free text (product ids, regions): ==, !=, in


BUCKET_VALUES: tuple[str, ...] = tuple(b.value for b in BUCKETS)
"""Delinquency buckets in order of severity: current, M1, M2, M3, M4+."""

PD_BANDS: tuple[str, ...] = ("very-low", "low", "medium", "high", "very-high")
"""PD bands (违约概率分档), cut by the plan's ``assumptions.pd_bands`` (four cut points)."""

AFFORDABILITY: tuple[str, ...] = ("affordable", "stretched", "unaffordable")
"""Affordability bands from the monthly payment over monthly income (null when income is unknown)."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One account feature: the column it lives in, how it compares and what it means."""

    name: str
    column: str
    kind: FeatureKind
    description: str
    vocabulary: tuple[str, ...] = ()

    @property
    def rank_column(self) -> str:
        """Ordinal features are also stored as their rank (0 = first value) for order comparisons."""
        return f"{self.column}_rank"


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("dpd", "dpd", FeatureKind.INTEGER, "days past due (逾期天数) of the account's most overdue loan"),
        Feature("bucket", "bucket", FeatureKind.ORDINAL, "worst delinquency bucket (账龄段)", BUCKET_VALUES),
        Feature("balance", "balance_fen", FeatureKind.MONEY, "principal outstanding over the open loans, yuan"),
        Feature("overdue", "overdue_fen", FeatureKind.MONEY, "principal, interest, fee and penalty past due, yuan"),
        Feature("pd", "pd", FeatureKind.NUMBER, "probability of default (违约概率) over 12 months, a fraction"),
        Feature("pd_band", "pd_band", FeatureKind.ORDINAL, "PD band cut by assumptions.pd_bands", PD_BANDS),
        Feature("product", "product", FeatureKind.TEXT, "product id of the account's largest open loan"),
        Feature("method", "method", FeatureKind.CATEGORY, "schedule method of the largest open loan", METHODS),
        Feature("term_left", "term_left", FeatureKind.INTEGER, "installments not yet due on the longest open loan"),
        Feature("loans", "loans", FeatureKind.INTEGER, "open loans on the account"),
        Feature("region", "region", FeatureKind.TEXT, "customer's region, an ISO 3166 code such as CN or US-MA"),
        Feature("city_tier", "city_tier", FeatureKind.CATEGORY, "city tier of residence", CITY_TIERS),
        Feature("income", "income_fen", FeatureKind.MONEY, "declared monthly income, yuan"),
        Feature(
            "payment_to_income",
            "payment_to_income",
            FeatureKind.NUMBER,
            "next month's installments over monthly income (还款收入比), a fraction",
        ),
        Feature(
            "affordability",
            "affordability",
            FeatureKind.ORDINAL,
            "payment_to_income cut by assumptions.stretched_payment_to_income and max_payment_to_income",
            AFFORDABILITY,
        ),
    )
}
"""Every feature a segment expression may name."""


def feature_names() -> str:
    """The allowed feature names, for error messages."""
    return ", ".join(sorted(FEATURES))
