"""The README is the front door: its first lines are the two commands, its configuration table
matches the settings, and `.ci/run` runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import FIELDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return f"`./{value}`"
    return f"`{value}`"


def test_configuration_table_matches_settings() -> None:
    table = README.split("<!-- settings-table -->")[1].split("<!-- /settings-table -->")[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.strip().splitlines()[2:]
    ]
    documented = {(r[0].strip("`"), r[1].strip("`"), r[2], r[3]) for r in rows}
    expected = {
        (f.metadata["env"] or "", f.metadata["flag"] or "", _default(f.default), f.metadata["doc"])
        for f in FIELDS
    }
    assert documented == expected


def test_first_lines_are_the_two_commands_and_ci_runs_the_test_command() -> None:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block and README.index(block.group(0)) < 40
    serve, test = [line.split("#")[0].strip() for line in block.group(1).strip().splitlines()]
    assert "decision-service serve" in serve
    assert "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text()
