"""`runoff compliance ...` on a Typer app built with this group's register()."""

import csv
import json

import pytest
import typer
from typer.testing import CliRunner

from runoff.cli.compliance import register


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    return app


def run(app, *args):
    return CliRunner().invoke(app, ["compliance", *args])


def _profile(tmp_path, **extra):
    lines = ["jurisdictions: [cn]", "lender_type: consumer-finance", "collector_types: [first-party, agency]"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = tmp_path / "profile.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _contacts(tmp_path, rows):
    path = tmp_path / "contacts.csv"
    fields = ["contact_id", "customer_id", "at", "time_zone", "region", "connected"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


FOUR_CALLS = [
    {"contact_id": f"k{i}", "customer_id": "C", "at": f"2026-03-02T{9 + i:02d}:00:00+08:00",
     "time_zone": "Asia/Shanghai", "region": "CN", "connected": "true"}
    for i in range(1, 5)
]  # fmt: skip


def test_rules_lists_one_jurisdiction_as_json(app):
    result = run(app, "rules", "--jurisdiction", "cn", "--json")
    assert result.exit_code == 0, result.output
    rules = json.loads(result.stdout)["rules"]
    assert len(rules) == 36 and {r["jurisdiction"] for r in rules} == {"cn"}
    col02 = next(r for r in rules if r["id"] == "CN-COL-02")
    assert col02["status"] == "secondary" and col02["checks"] == ["contact-window", "contact-frequency", "prohibition"]
    assert "at most 3 connected calls a day per (customer_id)" in col02["parameters"]
    assert col02["citation"].startswith("互联网金融贷后催收业务指引")


def test_rules_filters_by_profile_and_date(app, tmp_path):
    result = run(app, "rules", "--profile", str(_profile(tmp_path)), "--on", "2026-01-29", "--json")
    ids = {r["id"] for r in json.loads(result.stdout)["rules"]}
    assert "CN-COL-02" in ids and "CN-COL-03" not in ids and "CN-CAP-01" not in ids


def test_rules_table_for_people(app):
    result = run(app, "rules", "-j", "uk")
    assert result.exit_code == 0
    assert "UK-CCA-01" in result.stdout and "5 rules" in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--jurisdiction", "mars"], "`jurisdiction`: 'mars'"), (["--on", "yesterday"], "`--on`: 'yesterday'")],
    ids=["jurisdiction", "date"],
)
def test_rules_rejects_bad_options_with_exit_code_2(app, args, named):
    result = run(app, "rules", *args)
    assert result.exit_code == 2
    assert named in result.stderr


def test_check_contacts_finds_the_fourth_call_and_warns(app, tmp_path):
    result = run(
        app, "check-contacts", str(_contacts(tmp_path, FOUR_CALLS)), "--profile", str(_profile(tmp_path)), "--json"
    )
    assert result.exit_code == 0, result.output  # a secondary-source rule warns
    doc = json.loads(result.stdout)
    assert doc["contacts"] == 4 and doc["counts"] == {"block": 0, "warn": 1, "info": 0}
    assert doc["findings"][0]["message"] == (
        "CN-COL-02 (secondary source): 4 connected calls to customer C on 2026-03-02, limit 3 a day"
    )


def test_check_contacts_exits_1_when_the_profile_blocks_on_unconfirmed_rules(app, tmp_path):
    profile = _profile(tmp_path, block_on_unconfirmed="true")
    result = run(app, "check-contacts", str(_contacts(tmp_path, FOUR_CALLS)), "--profile", str(profile))
    assert result.exit_code == 1
    assert "CN-COL-02" in result.stdout and "1 block" in result.stdout


def test_check_contacts_names_the_bad_line(app, tmp_path):
    rows = [*FOUR_CALLS[:1], {**FOUR_CALLS[1], "at": "2026-03-02 10:00"}]
    result = run(app, "check-contacts", str(_contacts(tmp_path, rows)), "--profile", str(_profile(tmp_path)))
    assert result.exit_code == 2
    assert "contacts.csv line 3" in result.stderr and "`at`" in result.stderr


def test_check_contacts_with_a_bad_profile(app, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("jurisdictions: [cn]\nlender_type: pawnshop\n", encoding="utf-8")
    result = run(app, "check-contacts", str(_contacts(tmp_path, FOUR_CALLS)), "--profile", str(bad), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "compliance.profile_invalid"


def test_retention_lists_the_longest_floor_per_category(app, tmp_path):
    result = run(app, "retention", "--profile", str(_profile(tmp_path)), "--as-of", "2026-03-01",
                 "--closed-on", "2027-06-30", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    floors = {f["category"]: f for f in json.loads(result.stdout)["floors"]}
    assert floors["collection-records"]["rule_id"] == "CN-COL-01"
    assert floors["customer-identity"]["keep_until"] == "2032-06-30"
