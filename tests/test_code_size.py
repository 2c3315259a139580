"""Size limits that keep the package readable in a sitting: a module a reader can hold (400
lines), a class that does one job (300), a function that fits on a screen (60 lines of code).

Test modules may run longer (450), since a module's cases for one concern belong together;
past that they split by concern, as the package does.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import spacy_bert_ner

PACKAGE = Path(spacy_bert_ner.__file__).parent
TESTS = Path(__file__).parent
BENCHMARKS = TESTS.parent / "benchmarks"
MAX_MODULE_LINES = 400
MAX_TEST_MODULE_LINES = 450
MAX_CLASS_LINES = 300
MAX_FUNCTION_CODE_LINES = 60

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def definitions(path: Path) -> Iterator[Definition]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node


def docstring_lines(node: Definition) -> set[int]:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            return set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return set()


def code_lines(node: Definition, lines: list[str]) -> int:
    """Lines of code from the first decorator to the end: no docstring, blank or comment."""
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    skip = docstring_lines(node)
    return sum(
        1
        for number in range(start, (node.end_lineno or node.lineno) + 1)
        if number not in skip and lines[number - 1].strip()[:1] not in ("", "#")
    )


def name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_code_lines_leave_out_docstrings_blanks_and_comments(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text('@dec\ndef f():\n    """Doc\n    more."""\n\n    # note\n    return 1\n')
    (function,) = definitions(source)
    assert code_lines(function, source.read_text().splitlines()) == 3


def test_package_modules_stay_under_the_limit() -> None:
    long = {
        name(path): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"over {MAX_MODULE_LINES} lines: {long}"


def test_test_modules_stay_under_the_limit() -> None:
    long = {
        name(path): n
        for path in TESTS.rglob("test_*.py")
        if (n := len(path.read_text(encoding="utf8").splitlines())) > MAX_TEST_MODULE_LINES
    }
    assert not long, f"over {MAX_TEST_MODULE_LINES} lines: {long}"


def test_classes_and_functions_stay_under_the_limits() -> None:
    over = []
    for path in [*PACKAGE.rglob("*.py"), *BENCHMARKS.rglob("*.py")]:
        lines = path.read_text(encoding="utf8").splitlines()
        for node in definitions(path):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    over.append(f"{name(path)}:{node.lineno} class {node.name}: {size} lines")
            elif (size := code_lines(node, lines)) > MAX_FUNCTION_CODE_LINES:
                over.append(f"{name(path)}:{node.lineno} {node.name}: {size} lines of code")
    assert not over, "\n".join(over)
