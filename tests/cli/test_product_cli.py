"""`runoff product check`: OK for every example product, one clear message per bad file, exit 2 on any bad."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runoff.cli.main import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "products"
GOOD = sorted(EXAMPLES.glob("*.yaml"))
BAD = sorted((EXAMPLES / "bad").glob("*.yaml"))


@pytest.fixture(scope="module")
def app():
    return build_app()


def check(app, *args: str):
    return CliRunner().invoke(app, ["product", "check", *args])


def test_the_examples_cover_the_products_the_issue_names():
    assert len(GOOD) >= 6 and len(BAD) >= 5


def test_every_example_product_is_ok(app):
    result = check(app, *map(str, GOOD))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("OK") == len(GOOD)


def test_json_lists_each_file_with_its_apr_by_term(app):
    result = check(app, str(EXAMPLES / "baitiao-flat-fee.yaml"), "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    (entry,) = doc["files"]
    assert entry["product"] == "baitiao-flat-0.6"
    assert entry["method"] == "flat-fee"
    assert entry["terms"] == [3, 6, 12, 24]
    # a 0.6 %/month flat fee over 12 months is about 13 % nominal, whatever 0.6 % × 12 suggests
    assert entry["apr_nominal_by_term"]["12"].startswith("0.1303")


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("unknown-method.yaml", "`method`"),
        ("flat-fee-without-fee.yaml", "fee_rate"),
        ("both-rates.yaml", "`fee_rate`: not allowed"),
        ("zero-term.yaml", "`terms`: [0] not allowed"),
        ("rate-as-percent.yaml", "`annual_rate`"),
        ("unknown-field.yaml", "`day_cont`"),
        ("flat-fee-capitalize.yaml", "`grace_kind`"),
        ("not-yaml.yaml", "not valid YAML at line 3"),
        ("list-not-mapping.yaml", "expected a mapping"),
    ],
    ids=[
        "unknown-method",
        "flat-fee-without-fee",
        "both-rates",
        "zero-term",
        "rate-as-percent",
        "unknown-field",
        "flat-fee-capitalize",
        "not-yaml",
        "list-not-mapping",
    ],
)
def test_bad_file_gets_one_message_naming_the_field(app, name, named):
    path = EXAMPLES / "bad" / name
    result = check(app, str(path), "--json")
    assert result.exit_code == 2
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["ok"] is False
    assert named in entry["error"]["message"]
    assert str(path) in entry["error"]["message"]


def test_every_bad_example_is_caught(app):
    result = check(app, *map(str, BAD))
    assert result.exit_code == 2
    assert result.stdout.count("BAD") == len(BAD)
    assert "Traceback" not in result.output


def test_one_bad_file_among_good_ones_fails_the_run_but_reports_all(app):
    result = check(app, str(GOOD[0]), str(EXAMPLES / "bad" / "zero-term.yaml"), "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert [f["ok"] for f in doc["files"]] == [True, False]


def test_missing_file_is_reported_not_raised(app):
    result = check(app, "no/such/file.yaml")
    assert result.exit_code == 2
    assert "does not exist" in result.stdout
