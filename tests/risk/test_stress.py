"""Stress tests: each shock's documented arithmetic on a hand-made population, scenario files, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy_financial as npf
import polars as pl
import pytest

from runoff.errors import InvalidInput
from runoff.risk.stress import annuity_factor, load_scenario, parse_scenario, run_stress, stressed_features

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "stress"


def population() -> pl.DataFrame:
    """Four customers: two low-income tier-4 (one already 95 DPD), two better off."""
    return pl.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "income_band": ["<3k", "<3k", "8k-15k", "15k+"],
            "city_tier": ["tier-4+", "tier-4+", "tier-1", "tier-2"],
            "dpd_now": [0.0, 95.0, 0.0, 0.0],
            "income_yuan": [2000.0, 2500.0, 10000.0, 20000.0],
            "installment_yuan": [400.0, 500.0, 1000.0, 1000.0],
            "balance_yuan": [2000.0, 3000.0, 6000.0, 12000.0],
            "ead_yuan": [2000.0, 3000.0, 6000.0, 12000.0],
            "debt_service_ratio": [0.2, 0.2, 0.1, 0.05],
            "balance_to_income": [1.0, 1.2, 0.6, 0.6],
            "annual_rate": [0.18, 0.18, 0.12, 0.0],
            "installments_remaining": [6.0, 6.0, 6.0, 12.0],
        }
    )


def flat_pd(frame: pl.DataFrame) -> np.ndarray:
    """A stand-in model with no sensitivity at all: PD 10 % for everyone."""
    return np.full(frame.height, 0.10)


def dsr_pd(frame: pl.DataFrame) -> np.ndarray:
    """A stand-in model whose PD is the debt-service ratio itself (so shocks show through it exactly)."""
    return frame.get_column("debt_service_ratio").to_numpy()


@pytest.mark.parametrize(("rate", "n"), [(0.18, 6), (0.12, 12), (0.24, 24), (0.0, 6)], ids=str)
def test_annuity_factor_matches_numpy_financial(rate: float, n: int) -> None:
    expected = 1.0 / n if rate == 0 else -npf.pmt(rate / 12, n, 1.0)
    assert annuity_factor(np.array([rate]), np.array([n]))[0] == pytest.approx(expected)


def test_income_shock_raises_the_debt_service_ratio_of_its_segment_only() -> None:
    scenario = parse_scenario({"name": "t", "income": [{"segment": {"income_band": "<3k"}, "change": -0.2}]})
    out = stressed_features(population(), scenario)
    assert out.get_column("income_yuan").to_list() == [1600.0, 2000.0, 10000.0, 20000.0]
    assert out.get_column("debt_service_ratio").to_list() == pytest.approx([0.25, 0.25, 0.1, 0.05])


def test_shocks_matching_the_same_customer_multiply() -> None:
    scenario = parse_scenario(
        {"name": "t", "income": [{"change": -0.1}, {"segment": {"city_tier": ["tier-4+"]}, "change": -0.5}]}
    )
    assert stressed_features(population(), scenario).get_column("income_yuan").to_list() == pytest.approx(
        [900.0, 1125.0, 9000.0, 18000.0]
    )


def test_a_rate_rise_reprices_the_installment_over_the_remaining_term() -> None:
    scenario = parse_scenario({"name": "t", "rates": {"change_bp": 300}})
    out = stressed_features(population(), scenario).get_column("installment_yuan").to_numpy()
    ratio = npf.pmt(0.21 / 12, 6, 1.0) / npf.pmt(0.18 / 12, 6, 1.0)
    assert out[0] == pytest.approx(400.0 * ratio)
    assert out[3] == pytest.approx(1000.0 * (-npf.pmt(0.03 / 12, 12, 1.0)) * 12)  # from 0 % to 3 %


def test_model_sensitivity_carries_the_shock_into_the_pd() -> None:
    scenario = parse_scenario({"name": "t", "income": [{"segment": {"income_band": "<3k"}, "change": -0.2}]})
    result = run_stress(population(), scenario, dsr_pd)
    c = result.customers
    assert c.get_column("pd_base").to_list() == pytest.approx([0.2, 1.0, 0.1, 0.05])
    assert c.get_column("pd_stressed").to_list() == pytest.approx([0.25, 1.0, 0.1, 0.05])


def test_macro_factor_scales_the_hazard() -> None:
    # 1 − (1 − 0.1)² = 0.19
    result = run_stress(population(), parse_scenario({"name": "t", "macro": {"factor": 2.0}}), flat_pd)
    assert result.customers.get_column("pd_stressed").to_list() == pytest.approx([0.19, 1.0, 0.19, 0.19])


def test_unemployment_mixes_in_the_pd_of_losing_the_income() -> None:
    # u = 5 % (×2 for <3k = 10 %): 0.9·0.1 + 0.1·0.6 = 0.15; elsewhere 0.95·0.1 + 0.05·0.6 = 0.125
    scenario = parse_scenario(
        {
            "name": "t",
            "unemployment": {
                "rise_pp": 5,
                "pd_if_unemployed": 0.6,
                "segments": [{"segment": {"income_band": "<3k"}, "multiplier": 2}],
            },
        }
    )
    result = run_stress(population(), scenario, flat_pd)
    assert result.customers.get_column("pd_stressed").to_list() == pytest.approx([0.15, 1.0, 0.125, 0.125])


def test_the_affordability_link_multiplies_the_odds_per_ten_points_of_dsr() -> None:
    scenario = parse_scenario(
        {
            "name": "t",
            "income": [{"segment": {"income_band": "<3k"}, "change": -0.2}],
            "affordability_odds_per_10pp": 2.0,
        }
    )
    result = run_stress(population(), scenario, flat_pd)
    # customer 1: DSR 0.20 → 0.25, half of 10 points: odds 1/9 × 2^0.5
    odds = 1 / 9 * 2**0.5
    assert result.customers.get_column("pd_stressed")[0] == pytest.approx(odds / (1 + odds))
    assert result.customers.get_column("pd_stressed")[2] == pytest.approx(0.1)


def test_expected_loss_is_pd_times_lgd_times_ead_beside_the_base_case() -> None:
    scenario = parse_scenario({"name": "t", "lgd": 0.8, "stressed_lgd": 0.9, "macro": {"factor": 2.0}})
    result = run_stress(population(), scenario, flat_pd)
    c = result.customers
    assert c.get_column("el_base_yuan").to_list() == pytest.approx([160.0, 2400.0, 480.0, 960.0])
    assert c.get_column("el_stressed_yuan").to_list() == pytest.approx([342.0, 2700.0, 1026.0, 2052.0])
    assert result.totals["el_base_yuan"] == pytest.approx(4000.0)
    assert result.totals["el_stressed_yuan"] == pytest.approx(6120.0)
    assert result.totals["el_change_yuan"] == pytest.approx(2120.0)


def test_segment_rows_add_up_to_the_totals() -> None:
    scenario = load_scenario((EXAMPLES / "severe-2020.yaml").read_text(encoding="utf-8"))
    result = run_stress(population(), scenario, dsr_pd)
    seg = result.by_segment
    assert seg.get_column("income_band").to_list() == ["15k+", "8k-15k", "<3k"]
    for column in ("customers", "ead_yuan", "el_base_yuan", "el_stressed_yuan"):
        assert seg.get_column(column).sum() == pytest.approx(result.totals[column])
    assert result.affordability.get_column("share_base").sum() == pytest.approx(1.0)
    assert result.affordability.get_column("share_stressed").sum() == pytest.approx(1.0)
    data = result.as_dict()
    assert data["scenario"]["name"] == "severe-2020"
    assert {"totals", "by_segment", "affordability"} <= set(data)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_scenarios_load_and_raise_expected_loss(path: Path) -> None:
    scenario = load_scenario(path.read_text(encoding="utf-8"), source=path.name)
    result = run_stress(population(), scenario, dsr_pd)
    assert result.totals["el_stressed_yuan"] >= result.totals["el_base_yuan"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"name": "t", "macro": {"factor": 0}}, r"`macro.factor`"),
        ({"name": "t", "income": [{"change": -2}]}, r"`income.0.change`"),
        ({"name": "t", "lgd": 1.5}, r"`lgd`"),
        ({"name": "t", "shocks": {}}, r"`shocks`"),
        ({"name": "a/b"}, r"not allowed in a file name"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
    ids=["macro-factor", "income-change", "lgd", "unknown-field", "name", "not-a-mapping"],
)
def test_bad_scenarios_name_the_field(data: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_scenario(data)


def test_bad_yaml_and_bad_segments_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="not valid YAML at line 2"):
        load_scenario("name: x\n  bad: [")
    scenario = parse_scenario({"name": "t", "income": [{"segment": {"province": "Hubei"}, "change": -0.1}]})
    with pytest.raises(InvalidInput, match=r"`segment\.province`"):
        run_stress(population(), scenario, flat_pd)
    with pytest.raises(InvalidInput, match="`segment_by`"):
        run_stress(population(), parse_scenario({"name": "t", "segment_by": ["province"]}), flat_pd)
    with pytest.raises(InvalidInput, match="no customers"):
        run_stress(population().head(0), parse_scenario({"name": "t"}), flat_pd)
