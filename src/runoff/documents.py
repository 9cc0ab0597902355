"""Data files (products, plans, rule packs, profiles, scenarios, warning rules) as YAML text.

The one place YAML text becomes data: a syntax error is one clear error naming the source, the
line and column, and the problem; each kind of document then validates with its own pydantic model.
"""

from __future__ import annotations

from typing import Any

import yaml

from runoff.errors import InvalidInput


def yaml_data(
    text: str,
    *,
    source: str,
    error: type[InvalidInput] = InvalidInput,
    code: str | None = None,
    field: str | None = None,
) -> Any:
    """The data in ``text``; a YAML syntax error raises ``error`` naming ``source`` and where it failed."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise error(f"{source}: not valid YAML{where}: {problem}", code=code, field=field) from None
