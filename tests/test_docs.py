"""The README as a landing page and the documentation site's page list.

The strict site build (`mkdocs build --strict` in .ci/run) checks links and anchors inside the
site; these checks are what it cannot see: the README's opening, its length, its links into
docs/, and pages that no nav entry reaches.
"""

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import srsly

from tests.test_imports import LAYERS

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


def architecture_layers() -> dict[str, int]:
    """The layer table of docs/architecture.md ("| 5 | `experiments`, `serve` |"), as
    module -> layer."""
    text = (DOCS / "architecture.md").read_text(encoding="utf8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    table = {}
    for number, modules in re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.M):
        for module in re.findall(r"`([\w.]+)`", modules):
            table[module] = int(number)
    return table


def test_the_architecture_pages_layer_table_is_the_enforced_one():
    """The table readers see is the one `tests/test_imports.py` enforces, row for row."""
    assert architecture_layers() == LAYERS


#: A path that exists on one machine only: a home or work directory, or another OS's drive.
MACHINE_LOCAL_PATH = re.compile(
    r"(?<![\w.])/(?:work|root|home/\w+|Users/\w+)/"  # POSIX homes and work trees
    r"|[A-Z]:\\{1,2}Users\\"  # a Windows home, as written in prose or in a string
)


def tracked_text_files() -> list[tuple[Path, str]]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, text=True
    ).stdout
    texts = []
    for path in (REPO / name for name in listed.split("\0") if name):
        try:
            texts.append((path, path.read_text(encoding="utf8")))
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue  # binary fixtures (msgpack, safetensors) hold no paths a reader follows
    return texts


def test_no_machine_local_paths_in_the_repository():
    """A path like one developer's checkout means nothing to a reader, and breaks in CI."""
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path, text in tracked_text_files()
        for number, line in enumerate(text.splitlines(), start=1)
        if MACHINE_LOCAL_PATH.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_machine_local_path_pattern_finds_what_it_is_for():
    # Joined here so that this file holds no such path itself.
    for parts in (["flock ", "work", "notes", "lock"], ["cd ", "home", "ana", "x"]):
        assert MACHINE_LOCAL_PATH.search("/".join(parts)), parts
    assert MACHINE_LOCAL_PATH.search("C:" + "\\" + "Users" + "\\ana")
    for line in ["../shared/data/conll2003", "assets/eng.train", "a/work/b", "/tmp/x"]:
        assert not MACHINE_LOCAL_PATH.search(line), line
