"""Every function the package registers with spaCy or thinc has an entry point in setup.cfg,
and every entry point names a registered function.

spaCy finds a registered name through its entry point when the module that registers it has
not been imported yet (a config naming `spacy_bert_ner.first_piece.v1` in a fresh process);
without one, the name is unknown there. The installed metadata may come from another
checkout, so this reads setup.cfg and the package source, not `importlib.metadata`.
"""

import ast
import configparser
from pathlib import Path

import pytest
from spacy.util import registry

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "spacy_bert_ner"
#: The entry point group of `@Language.factory` (spaCy's `registry._entry_point_factories`).
FACTORIES_GROUP = "spacy_factories"

Entry = tuple[str, str, str]  # (group, registered name, "module:function")


def entry_points(setup_cfg: str) -> set[Entry]:
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names keep their case
    parser.read_string(setup_cfg)
    found = set()
    for group, lines in parser["options.entry_points"].items():
        for line in filter(None, (line.strip() for line in lines.splitlines())):
            name, _, target = line.partition("=")
            found.add((group, name.strip(), target.strip()))
    return found


def registrations(source: str, module: str) -> set[Entry]:
    """`@registry.<kind>(NAME)` and `@Language.factory(NAME)` on module-level functions, and
    `registry.<kind>.register(NAME, func=function)` calls; NAME a string or a module constant."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def name_of(node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return str(constants[node.id])
        raise AssertionError(f"{module}: cannot read a registered name from {ast.dump(node)}")

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                group = _group_of(decorator)
                if group is not None:
                    assert isinstance(decorator, ast.Call)
                    found.add((group, name_of(decorator.args[0]), f"{module}:{node.name}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "register" and (group := _group_of(node.func.value)):
                func = next(k.value for k in node.keywords if k.arg == "func")
                assert isinstance(func, ast.Name), f"{module}: register a module-level function"
                found.add((group, name_of(node.args[0]), f"{module}:{func.id}"))
    return found


def _group_of(node: ast.expr) -> str | None:
    """The entry point group of a `registry.<kind>` or `Language.factory` expression (for a
    decorator, of the call's function)."""
    if isinstance(node, ast.Call):
        node = node.func
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
        return None
    if (node.value.id, node.attr) == ("Language", "factory"):
        return FACTORIES_GROUP
    if node.value.id == "registry":
        return str(getattr(registry, node.attr).entry_point_namespace)
    return None


def package_registrations() -> set[Entry]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        found |= registrations(path.read_text(encoding="utf8"), module)
    return found


def test_every_registered_function_has_its_entry_point_and_every_entry_point_a_function():
    registered = package_registrations()
    declared = entry_points((REPO / "setup.cfg").read_text(encoding="utf8"))
    groups = {group for group, _, _ in registered}  # the scan works (a broken one finds none)
    assert {"spacy_factories", "spacy_architectures", "thinc_layers", "spacy_loggers"} <= groups
    assert sorted(registered - declared) == [], "registered without (this) entry point"
    assert sorted(declared - registered) == [], "entry point without (this) registration"


def test_the_scan_reads_decorators_constants_and_register_calls():
    source = """
NAME = "x.reader.v1"

@registry.readers(NAME)
def make_reader(): ...

@registry.layers("x.pool.v1")
def pool(): ...

@Language.factory("x_pipe")
def make_pipe(nlp, name): ...

def scorer(): ...

registry.scorers.register("x.scorer.v1", func=scorer)
registry.loggers.get("spacy.ConsoleLogger.v3")
"""
    assert registrations(source, "pkg.mod") == {
        ("spacy_readers", "x.reader.v1", "pkg.mod:make_reader"),
        ("thinc_layers", "x.pool.v1", "pkg.mod:pool"),
        ("spacy_factories", "x_pipe", "pkg.mod:make_pipe"),
        ("spacy_scorers", "x.scorer.v1", "pkg.mod:scorer"),
    }


@pytest.mark.parametrize(
    "setup_cfg",
    [
        "[options.entry_points]\nspacy_readers =\n    x.reader.v1 = pkg.mod:other\n",
        "[options.entry_points]\nspacy_loggers =\n    x.reader.v1 = pkg.mod:make_reader\n",
    ],
)
def test_a_wrong_target_or_group_does_not_match(setup_cfg):
    registered = registrations(
        '@registry.readers("x.reader.v1")\ndef make_reader(): ...', "pkg.mod"
    )
    assert entry_points(setup_cfg) != registered
