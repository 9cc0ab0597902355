"""docs/settings.md lists every field of runoff.config.Settings with its environment variable."""

import re
import typing
from pathlib import Path

from pydantic import Field

from runoff.config import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| `(?P<env>[A-Z_]+)` \|", re.MULTILINE)


def documented(text: str) -> dict[str, str]:
    """setting → environment variable, from the rows of the settings table."""
    return {m["name"]: m["env"] for m in ROW.finditer(text)}


def problems(text: str, settings: type[Settings]) -> list[str]:
    """Fields missing from the table, rows naming the wrong variable, and rows for fields that do not exist."""
    prefix = settings.model_config.get("env_prefix", "")
    rows = documented(text)
    out = []
    for name in settings.model_fields:
        env = f"{prefix}{name}".upper()
        if name not in rows:
            out.append(f"`{name}` ({env}) is not in docs/settings.md")
        elif rows[name] != env:
            out.append(f"`{name}` is documented with {rows[name]}, but is read from {env}")
    out += [
        f"`{name}` is documented but is not a field of Settings" for name in rows if name not in settings.model_fields
    ]
    return out


def test_every_setting_is_documented_with_its_environment_variable():
    assert problems(DOC.read_text(encoding="utf-8"), Settings) == []


def test_a_new_setting_without_a_row_is_caught():
    class Wider(Settings):
        report_language: str = Field(default="zh-CN")

    assert problems(DOC.read_text(encoding="utf-8"), Wider) == [
        "`report_language` (RUNOFF_REPORT_LANGUAGE) is not in docs/settings.md"
    ]


def test_a_row_with_the_wrong_variable_or_no_field_is_caught():
    text = "| `workspace` | `RUNOFF_HOME` | x |\n| `database_url` | `RUNOFF_DATABASE_URL` | x |\n| `colour` | `RUNOFF_COLOUR` | x |\n"
    assert problems(text, Settings) == [
        "`workspace` is documented with RUNOFF_HOME, but is read from RUNOFF_WORKSPACE",
        "`dask_scheduler` (RUNOFF_DASK_SCHEDULER) is not in docs/settings.md",
        "`colour` is documented but is not a field of Settings",
    ]


def _takes_text(annotation: object) -> bool:
    return annotation in (str, Path) or any(a in (str, Path) for a in typing.get_args(annotation))


def test_the_documented_variable_is_the_one_settings_reads(monkeypatch, tmp_path):
    rows = documented(DOC.read_text(encoding="utf-8"))
    textual = [n for n, f in Settings.model_fields.items() if _takes_text(f.annotation)]
    assert textual  # workspace, database_url and dask_scheduler at least
    for name in textual:
        monkeypatch.setenv(rows[name], str(tmp_path))
    settings = Settings()
    for name in textual:
        assert str(getattr(settings, name)) == str(tmp_path), name
