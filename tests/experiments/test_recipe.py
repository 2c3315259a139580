"""The experiments' recipe is the config's: its optimizer, peak rate and warm-up share, fitted
to a shorter run; and no learning rate is written as a literal anywhere in the package, where
it would drift from configs/ (as 5e-5 did when cpu.cfg moved to 1e-4)."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from spacy.util import load_config

import spacy_bert_ner
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.experiments.recipe import Recipe, fitted_rate

CPU_CFG = Path(__file__).resolve().parents[2] / "configs" / "cpu.cfg"
PACKAGE = Path(spacy_bert_ner.__file__).parent


def rates(recipe: Recipe, total_steps: int, peak_rate: float | None = None) -> list[float]:
    optimizer = recipe.optimizer_for(total_steps, peak_rate)
    out = []
    for _ in range(total_steps + 1):
        out.append(optimizer.learn_rate)
        optimizer.step_schedules()
    return out


def test_the_schedule_of_cpu_cfg_is_fitted_to_the_run():
    config = load_config(CPU_CFG)
    schedule = config["training"]["optimizer"]["learn_rate"]
    recipe = Recipe.of(config)
    assert recipe.dropout == config["training"]["dropout"]
    by_step = rates(recipe, 100)
    warmup = round(100 * schedule["warmup_steps"] / schedule["total_steps"])
    assert warmup == 10
    assert by_step[0] == 0.0 and by_step[warmup] == pytest.approx(schedule["initial_rate"])
    assert max(by_step) == by_step[warmup]  # the config's peak, at the config's share
    assert by_step[100] == 0.0  # decayed to 0 at the run's end, not at step 1317
    optimizer = recipe.optimizer_for(100)
    adam = config["training"]["optimizer"]
    assert (optimizer.L2, optimizer.grad_clip, optimizer.b1) == (
        adam["L2"],
        adam["grad_clip"],
        adam["beta1"],
    )


def test_a_peak_rate_given_replaces_the_configs():
    recipe = Recipe.of(load_config(CPU_CFG))
    assert max(rates(recipe, 50, peak_rate=3.0)) == pytest.approx(3.0)
    constant = Recipe(optimizer={"@optimizers": "Adam.v1", "learn_rate": 0.5}, dropout=0.0)
    assert rates(constant, 3) == [0.5] * 4
    assert rates(constant, 3, peak_rate=0.25) == [0.25] * 4


def test_other_schedules_keep_their_shape():
    triangle = {"@schedules": "slanted_triangular.v1", "max_rate": 1.0, "num_steps": 1000}
    assert fitted_rate(triangle, 40, None)["num_steps"] == 40
    decay = {"@schedules": "decaying.v1", "base_rate": 1.0, "decay": 0.5}
    assert fitted_rate(decay, 40, 2.0) == {**decay, "base_rate": 2.0}
    with pytest.raises(BertNERError, match="--learn-rate: the config's schedule compounding.v1"):
        fitted_rate({"@schedules": "compounding.v1", "start": 1, "stop": 2}, 40, 2.0)


#: A name that holds a learning rate: `lr`, `learn_rate`, `initial_rate`, `max_rate`, ...
RATE_NAME = re.compile(r"(?i)(^|_)(lr|rate)$|learn_?rate")
#: Thinc's optimizers, whose first positional argument is the learning rate.
OPTIMIZERS = {"Adam", "RAdam", "SGD"}
#: Learning rates of fine-tuning and of heads span this range; outside it a float named like a
#: rate is something else (a tolerance of 1e-8, a dropout rate of 0.1).
RATE_RANGE = (1e-6, 1e-2)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _named_values(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(name, value) pairs in `node` where the value is bound to, or passed as, the name."""
    if isinstance(node, ast.Assign):
        yield from ((_name(target), node.value) for target in node.targets)
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        yield _name(node.target), node.value
    elif isinstance(node, ast.keyword) and node.arg:
        yield node.arg, node.value
    elif isinstance(node, ast.Dict):
        yield from ((_name(k), v) for k, v in zip(node.keys, node.values, strict=True) if k)
    elif isinstance(node, ast.arguments):
        positional = node.posonlyargs + node.args
        with_defaults = positional[len(positional) - len(node.defaults) :]
        yield from zip((a.arg for a in with_defaults), node.defaults, strict=True)
        kw_defaults = zip(node.kwonlyargs, node.kw_defaults, strict=True)
        yield from ((a.arg, d) for a, d in kw_defaults if d is not None)
    elif isinstance(node, ast.Call) and _name(node.func) in OPTIMIZERS and node.args:
        yield "learn_rate", node.args[0]


def literal_rates(source: str) -> list[str]:
    """`line: name = value` for every float literal in the rate range bound to a rate's name
    (anywhere in the bound expression, e.g. `typer.Option(5e-5, ...)` as a default)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for name, value in _named_values(node):
            if not RATE_NAME.search(name):
                continue
            for leaf in ast.walk(value):
                if (
                    isinstance(leaf, ast.Constant)
                    and isinstance(leaf.value, float)
                    and RATE_RANGE[0] <= abs(leaf.value) <= RATE_RANGE[1]
                ):
                    found.append(f"{leaf.lineno}: {name} = {leaf.value!r}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "class S:\n    learn_rate: float = 5e-5\n",
        "def train(lr=1e-4):\n    pass\n",
        "def train(*, initial_rate: float = 2e-3):\n    pass\n",
        'def cli(learn_rate: float = typer.Option(5e-5, "--learn-rate")):\n    pass\n',
        "schedule = warmup_linear(initial_rate=1e-4, warmup_steps=1, total_steps=2)\n",
        'block = {"learn_rate": 0.0001}\n',
        "self.max_rate = 3e-5\n",
        "optimizer = Adam(2e-3)\n",
    ],
)
def test_a_planted_literal_rate_is_found(source):
    assert literal_rates(source)


@pytest.mark.parametrize(
    "source",
    [
        "LATENCY_BUCKETS = (0.005, 0.01, 0.025)\n",  # seconds
        "bar = colorbar(image, fraction=0.046, pad=0.04)\n",
        "eps = 1e-8\n",
        "learn_rate = config['training']['optimizer']['learn_rate']\n",
        "dropout_rate = 0.1\n",
        'def doc():\n    """learn_rate: 5e-5 in a docstring is prose."""\n',
        "Adam(L2=0.01, learn_rate=schedule)\n",
    ],
)
def test_constants_that_are_not_rates_are_not_flagged(source):
    assert not literal_rates(source)


def test_no_literal_learning_rate_in_the_package():
    """The rate lives in configs/ (a training config, or the pipeline's own config.cfg); a
    search space's bounds are data in configs/search_space.yml, read by `tune`."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{hit}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for hit in literal_rates(path.read_text(encoding="utf8"))
    ]
    assert not found
