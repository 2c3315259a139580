"""The README as a landing page and the documentation site's page list.

The strict site build (`mkdocs build --strict` in .ci/run) checks links and anchors inside the
site; these checks are what it cannot see: the README's opening, its length, its links into
docs/, and pages that no nav entry reaches.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import srsly

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
#: The two set-up commands every newcomer copies first: install and run the workflow, then test.
SETUP_COMMANDS = [
    'pip install torch==2.13.0 -e ".[minilm,project,test]" && python -m spacy_bert_ner assets'
    " && spacy project run all",
    "python -m pytest -q",
]
MAX_README_LINES = 150
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def nav_pages(node: Any) -> Iterator[str]:
    """The page paths of an mkdocs `nav` (a list of paths, {title: path} and {title: [...]})."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from nav_pages(value)


def site_nav() -> list[str]:
    return list(nav_pages(srsly.read_yaml(REPO / "mkdocs.yml")["nav"]))


def test_readme_opens_with_the_two_setup_commands():
    lines = README.read_text(encoding="utf8").splitlines()
    assert lines[0].startswith("# ")
    first_fence = next(i for i, line in enumerate(lines) if line.startswith("```"))
    assert all(not line.strip() for line in lines[1:first_fence]), "text before the commands"
    assert lines[first_fence] == "```bash"
    assert lines[first_fence + 1 : first_fence + 4] == [*SETUP_COMMANDS, "```"]


def test_readme_is_a_landing_page():
    n_lines = len(README.read_text(encoding="utf8").splitlines())
    assert n_lines <= MAX_README_LINES, f"README.md has {n_lines} lines; move detail into docs/"


def test_every_page_is_in_the_nav():
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    nav = site_nav()
    assert sorted(pages - set(nav)) == [], "pages no nav entry reaches"
    assert sorted(set(nav) - pages) == [], "nav entries without a page"
    assert len(nav) == len(set(nav)), "a page listed twice"


def test_markdown_links_outside_the_site_resolve():
    """README.md and benchmarks/README.md link into docs/ by relative path, as GitHub reads
    them; the site build never sees these files."""
    for markdown in (README, REPO / "benchmarks" / "README.md"):
        for target in LINK.findall(markdown.read_text(encoding="utf8")):
            if "://" in target:
                continue
            assert (markdown.parent / target).exists(), f"{markdown.name}: broken link {target}"
