"""The package's shape: imports run one way (no cycles, function-level imports included), and
importing it changes nothing in the host process."""

import ast
import subprocess
import sys
from pathlib import Path

import spacy_bert_ner

PACKAGE = Path(spacy_bert_ner.__file__).parent
#: Layers from the bottom: a module may import from its own layer's package or from a lower
#: layer, never from a higher one (`cli` -> commands -> `pipeline` -> `models`/`tags` ->
#: `errors`).
LAYERS = {
    "errors": 0,
    "about": 0,
    "io": 1,
    "extras": 1,
    "tags": 1,
    "posteriors": 1,
    "text": 1,
    "models": 2,
    "conll": 2,
    "pipeline": 3,
    "training": 4,
    "evaluation": 4,
    "annotate": 4,
    "experiments": 5,
    "integrations": 5,
    "labelling": 5,
    "project_assets": 5,
    "serve": 5,
    "cli": 6,
    "__main__": 7,
    "__init__": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The package's modules that `path` imports anywhere in it (functions included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] == "spacy_bert_ner")
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {t for t in found if t in modules and t != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def test_every_module_has_a_layer():
    tops = {module.split(".")[1] if "." in module else "__init__" for module in graph()}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_imports_only_run_downward():
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if target != "spacy_bert_ner"
        and layer(target) > layer(module)
        and target.split(".")[1] != module.split(".")[1]
    ]
    assert not upward


def test_no_import_cycles():
    edges = graph()
    # Depth-first search; a back edge to a module on the stack is a cycle.
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles


def test_function_level_imports_are_edges_too():
    # The CLI imports each command's module inside the command's function.
    assert "spacy_bert_ner.evaluation.command" in graph()["spacy_bert_ner.cli.evaluation"]


IMPORT_EVERYTHING = """
import os, pkgutil, importlib, sys, traceback
calls = []
real_umask, real_register = os.umask, os.register_at_fork
def umask(mask):
    calls.append("umask")
    return real_umask(mask)
def register_at_fork(**hooks):
    caller = traceback.extract_stack()[-2].filename  # ours, not a library's own hook
    if "spacy_bert_ner" in caller:
        calls.append("register_at_fork")
    return real_register(**hooks)
os.umask, os.register_at_fork = umask, register_at_fork
import torch
torch.set_num_threads(2)
import spacy_bert_ner
for module in pkgutil.walk_packages(spacy_bert_ner.__path__, "spacy_bert_ner."):
    if not module.name.endswith("__main__"):  # runs the CLI
        importlib.import_module(module.name)
assert torch.get_num_threads() == 2, torch.get_num_threads()
print("after import:", calls)
import spacy
for _ in range(2):
    spacy.blank("en").add_pipe("bert_ner", config={"model": "not-loaded-until-used"})
print("after two pipes:", calls)
"""


def test_importing_changes_no_process_wide_state():
    """No umask toggling (a race in threaded hosts) and no fork hook until a `bert_ner` is
    created; then the hook is installed once, however many pipes there are."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == [
        "after import: []",
        "after two pipes: ['register_at_fork']",
    ]
