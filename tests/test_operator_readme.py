"""The README says what the code does: `/readyz`'s fields in the Endpoints table are those a real process returns,
and the Tests table lists exactly the test files in tests/ (issue 16 found `event_loop` and a test file missing)."""

from __future__ import annotations

import re

from fleet.config import ROOT
from tests.client import get

README = ROOT / "README.md"


def table_row(text: str, first_cell: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"README: expected one table row starting with {first_cell!r}, found {len(rows)}"
    return rows[0]


def documented_readyz_fields(text: str) -> tuple[set[str], set[str]]:
    """(the fields of the `{...}` list, the extra ones named as `plus "x"`) in the Endpoints row of /readyz."""
    row = table_row(text, "`GET /readyz`")
    listed = re.search(r"`\{([^}]*)\}`", row)
    assert listed, 'README: the /readyz row has no `{"field", ...}` list'
    extra = set(re.findall(r'plus `"(\w+)"`', row))
    return set(re.findall(r'"(\w+)"', listed[1])), extra


def test_readme_lists_the_fields_readyz_returns(start_app):
    app = start_app()
    body = get(f"{app.url}/readyz").json()
    always, extra = documented_readyz_fields(README.read_text())
    assert set(body) == always, f"README lists {sorted(always)}, /readyz returns {sorted(body)}"
    # The error field comes with a 503 only; it must not be in the list of fields every answer has.
    assert "error" in extra and "error" not in body


def test_readme_tests_table_lists_every_test_file_and_no_other():
    text = README.read_text()
    section = text.split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `tests/((?:\w+/)?test_\w+\.py)` \|", section, re.M))
    present = {path.relative_to(ROOT / "tests").as_posix() for path in (ROOT / "tests").rglob("test_*.py")}
    assert not present - documented, f"test files without a row in README's Tests table: {sorted(present - documented)}"
    assert not documented - present, f"README's Tests table names missing files: {sorted(documented - present)}"
