"""Running a command of the CLI tests' ``cli`` fixture for its JSON document."""

from __future__ import annotations

import json
from typing import Any


def run_json(cli, *args: str) -> Any:
    """The command's ``--json`` document; the command must succeed."""
    code, out, err = cli(*args, "--json")
    assert code == 0, out + err
    return json.loads(out)
