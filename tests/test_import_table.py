"""Every public name of Channels 1.x resolves at its new home, as the docs' import table says.

The table in docs/reference/import-table.md (the `| Channels 1.x | here |` table) is
parsed here, so the two cannot drift apart: each row's new names must import.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

IMPORT_TABLE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "import-table.md"
TABLE_HEADER = "| Channels 1.x | here |"


def table_rows() -> list[tuple[str, str]]:
    text = IMPORT_TABLE.read_text()
    # The table runs from its header line to the first line that is not a table row.
    after = text.split(TABLE_HEADER + "\n", 1)[1]
    section = after.split("\n\n", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and new_names(cells[1]):
            rows.append((cells[0], cells[1]))
    return rows


def new_names(cell: str) -> list[str]:
    """`module.name` references in a 'here' cell (only backticked dotted paths)."""
    return [ref for ref in re.findall(r"`([\w.]+)`", cell) if "." in ref]


def resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


ROWS = table_rows()


def test_the_table_is_there():
    assert len(ROWS) >= 20, ROWS


@pytest.mark.parametrize(("old", "new"), ROWS, ids=[old[:60] for old, _ in ROWS])
def test_each_new_home_imports(old, new):
    for ref in new_names(new):
        assert resolve(ref) is not None, ref
