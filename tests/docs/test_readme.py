"""The README stays a short front page, and no relative link of it or of the docs points at nothing.

The README (under 15 KB) says what the project is, the two quickstart commands, a short example, the
headline figures and links into docs/; the long form lives in docs/. Its test command must stay the
one `.ci/run` runs, and the full Test section (xdist groups, `alone`) must stay in docs/development.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 15_000  # bytes: "under 15 KB"
TEST_COMMAND = "python3 -m pytest -n 2 --dist loadgroup"

# [text](target) outside code; images too. Autolinks (<https://...>) are absolute and not checked.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    return LINK.findall(text)


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("#")


def _github_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a Markdown page's headings (lowercase, punctuation dropped, spaces to -)."""
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


PAGES = [README, *sorted(DOCS.rglob("*.md"))]


def test_readme_is_under_15_kb():
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes; move the long form into docs/"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in _links(page):
        if not _relative(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            broken.append(target)
        elif page == README and anchor and resolved.suffix == ".md" and anchor not in _github_anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_readme_links_into_the_docs():
    targets = {target.partition("#")[0] for target in _links(README) if _relative(target)}
    for page in (
        "docs/tutorial.md",
        "docs/topics/deploying.md",
        "docs/scaling-out.md",
        "docs/operations.md",
        "docs/failure-behaviour.md",
        "docs/porting.md",
        "docs/benchmarks.md",
        "docs/reference/settings.md",
        "docs/development.md",
    ):
        assert page in targets, page


def test_the_quickstart_commands_are_the_ones_ci_and_the_example_run():
    readme = README.read_text()
    assert "bash example/start.sh" in readme
    assert TEST_COMMAND in readme
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    assert ci_lines[-1] == TEST_COMMAND, ci_lines[-1]


def test_the_full_test_section_lives_in_the_development_page():
    page = (DOCS / "development.md").read_text()
    section = page.split("\n## Test\n", 1)[1].split("\n## ", 1)[0]
    assert TEST_COMMAND in section
    for needed in ("--dist loadgroup", "`alone`", "tests/support/alone.py", '-m "not slow"', "TEST_REDIS_URL"):
        assert needed in section, needed


def test_the_readme_headline_figures_are_dated():
    section = README.read_text().split("\n## Headline figures\n", 1)[1].split("\n## ", 1)[0]
    bullets = re.split(r"\n- ", section)[1:]
    assert len(bullets) >= 3
    for bullet in bullets:
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", bullet), bullet
