"""The documentation site builds with `mkdocs build --strict`: no broken link, no page left out of the nav.

mkdocs comes with the `docs` extra (`pip install -e ".[docs]"`); CI installs it. Links to a missing
anchor are only INFO lines for mkdocs (mkdocs.yml says why); this test fails on them too, except the
two GitHub-style anchors of failure-behaviour.md, which work when GitHub renders the page.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.docs.tutorial_steps import tool_env

ROOT = Path(__file__).resolve().parents[2]

# failure-behaviour.md's own table of contents, written for GitHub's anchors.
GITHUB_ANCHORS = {"#runworker---threads-default", "#origins---allowed-origins"}


def test_mkdocs_build_strict(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
        + ["--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert "No module named mkdocs" not in output, 'mkdocs is missing: pip install -e ".[docs]"'
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    missing_anchors = [
        line
        for line in output.splitlines()
        if "there is no such anchor" in line and not any(f"'{anchor}'" in line for anchor in GITHUB_ANCHORS)
    ]
    assert not missing_anchors, "\n".join(missing_anchors)
    # Every page of docs/ is built (none left out of the nav: omitted_files is a warning).
    for page in (ROOT / "docs").rglob("*.md"):
        relative = page.relative_to(ROOT / "docs").with_suffix("")
        built = tmp_path / "site" / (relative.parent if relative.name == "index" else relative) / "index.html"
        assert built.exists(), page
    assert re.search(
        r"interface-server mysite\.asgi:channel_layer", (tmp_path / "site/tutorial/index.html").read_text()
    )


def _setting_names_read_by_the_code() -> set[str]:
    names = set()
    for package in ("channels_core", "routing", "worker", "interface_server"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"(?:getattr\(settings, |_setting\()\"([A-Z_]+)\"", path.read_text()))
    return names


def test_settings_reference_lists_every_setting_the_code_reads():
    """docs/reference/settings.md names every `getattr(settings, "X", default)` of the packages.

    (`channels_core/ordering.py` reads its two settings through `_setting("X", default)`.)
    """
    names = _setting_names_read_by_the_code()
    assert {"CHANNEL_LAYERS", "CHANNEL_SESSION_ENGINE", "CHANNELS_ORDERING_TIMEOUT"} <= names  # the scan works
    page = (ROOT / "docs/reference/settings.md").read_text()
    assert not {name for name in names if f"`{name}`" not in page}


def _long_options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", help_text)) - {"--help"}


def test_cli_reference_lists_every_option():
    """docs/reference/cli.md names every long option of `interface-server --help` and `runworker --help`."""
    page = (ROOT / "docs/reference/cli.md").read_text()
    server_help = subprocess.run(
        [sys.executable, "-m", "interface_server", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    worker_help = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--help"],
        cwd=ROOT / "tutorial",
        env=tool_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for help_text in (server_help, worker_help):
        options = _long_options(help_text)
        assert "--metrics-port" in options  # the scan works
        assert not {option for option in options if f"`{option}" not in page}


def test_import_table_page_names_only_homes_that_import():
    """Every new home in docs/reference/import-table.md imports (as tests/test_import_table.py checks, row by row)."""
    from tests.test_import_table import new_names, resolve

    rows = []
    for line in (ROOT / "docs/reference/import-table.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and new_names(cells[1]):
            rows.append(cells)
    assert len(rows) >= 20, rows
    for old, new in rows:
        for ref in new_names(new):
            assert resolve(ref) is not None, (old, ref)


def test_deploying_page_shows_the_repositorys_procfile():
    """docs/topics/deploying.md quotes the Procfile: the quote is the file."""
    page = (ROOT / "docs/topics/deploying.md").read_text()
    quoted = page.split("The repository's `Procfile` deploys the example project:\n\n```\n", 1)[1].split("```", 1)[0]
    assert quoted == (ROOT / "Procfile").read_text()


def test_every_python_block_of_the_docs_parses():
    """A ```python block of any page is Python (a typo in an example fails here, not in a reader's editor)."""
    blocks = 0
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for match in re.finditer(r"^([ \t]*)```python\n(.*?)^[ \t]*```", page.read_text(), re.S | re.M):
            blocks += 1
            source = textwrap.dedent(match.group(2))
            try:
                ast.parse(source)
            except SyntaxError as exc:
                raise AssertionError(f"{page.relative_to(ROOT)}: {exc}\n{source}") from None
    assert blocks >= 20  # the scan finds the blocks (30 on 2026-12-07)
