"""spaCy's contract for a pipeline component, kept by `bert_ner` in both architectures: a
trained standalone pipeline (`trained_tiny`) and a listener one (`trained_multitask`).

What users do with a pipeline besides `nlp(text)`: pickle it (`nlp.pipe(n_process=N)` under
the spawn start method, the default on macOS and Windows, and joblib, Dask or Ray), copy it,
pipe tuples, serialize to bytes, select pipes, store predictions in a DocBin, mix it with an
`entity_ruler`, evaluate it, and run spaCy's commands on its configs and package. Where a path
predicts, it must give the entities and scores of plain `nlp.pipe`.
"""

import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.language import Language
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import Config

from .conftest import gold_examples
from .test_spacy_commands import spacy_cli

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "angela merkel met macron in paris",
    "the berlin of angela",
    "paris and berlin met merkel",
    "berlin " * 50 + "angela merkel",  # several windows and transformer spans
]
#: The configs each architecture trains from, and the setting naming their encoder.
CONFIGS = {
    "standalone": ("cpu.cfg", "bert_ner"),
    "listener": ("cpu_multitask.cfg", "transformer"),
}
#: (text, label, start, end, score) of each entity of each doc.
Entities = list[list[tuple[str, str, int, int, float | None]]]


def entities(docs: Any) -> Entities:
    return [[(e.text, e.label_, e.start, e.end, e._.bert_ner_score) for e in d.ents] for d in docs]


def run_python(code: str, *args: str, cwd: Path = REPO) -> str:
    """`code` in a fresh interpreter that imports this checkout's package."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module", params=list(CONFIGS))
def architecture(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def saved(architecture: str, request: pytest.FixtureRequest) -> Path:
    fixture = "trained_tiny" if architecture == "standalone" else "trained_multitask"
    return Path(request.getfixturevalue(fixture))


@pytest.fixture
def nlp(saved: Path) -> Language:
    return spacy.load(saved)


@pytest.fixture(scope="module")
def expected(saved: Path) -> Entities:
    found = entities(spacy.load(saved).pipe(TEXTS))
    assert sum(map(len, found)) >= 8  # the trained pipelines find entities to compare
    return found


# -- Python API --------------------------------------------------------------------------


def test_pickle_round_trip(nlp, expected):
    assert entities(pickle.loads(pickle.dumps(nlp)).pipe(TEXTS)) == expected


def test_deepcopy_predicts_the_same_and_shares_nothing(nlp, expected):
    copied = copy.deepcopy(nlp)
    assert entities(copied.pipe(TEXTS)) == expected
    copied.get_pipe("bert_ner").add_label("MISC")
    assert "MISC" not in nlp.get_pipe("bert_ner").labels
    assert entities(nlp.pipe(TEXTS)) == expected


SPAWNED_PIPE = """
import json, multiprocessing, sys
import spacy
multiprocessing.set_start_method("spawn", force=True)
path, overrides, texts = json.loads(sys.argv[1])
nlp = spacy.load(path, config=overrides)
docs = nlp.pipe(texts, n_process=2, batch_size=2)
print(json.dumps([
    [(e.text, e.label_, e.start, e.end, e._.bert_ner_score) for e in doc.ents] for doc in docs
]))
"""


#: The pipelines `n_process` runs under spawn: the listener, and each runtime of the
#: standalone architecture.
SPAWNED = {
    "listener": ("trained_multitask", {}),
    "standalone-torch": ("trained_tiny", {}),
    "standalone-int8": ("trained_tiny", {"components.bert_ner.model.int8": True}),
    "standalone-onnxruntime": (
        "trained_tiny",
        {"components.bert_ner.model.backend": "onnxruntime"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", SPAWNED)
def test_pipe_with_two_processes_under_spawn(case, request):
    """The workers get the pipeline pickled: each runtime must survive it (an int8 copy is
    quantized again there, an ONNX Runtime session started there). Each worker pipes the
    batches of `batch_size` it is sent, as `nlp.pipe` would (padding moves the last digits
    of a score, and int8 quantizes activations by batch)."""
    fixture, overrides = SPAWNED[case]
    if "onnxruntime" in case:
        pytest.importorskip("onnxruntime")
    saved = request.getfixturevalue(fixture)
    want = entities(spacy.load(saved, config=overrides).pipe(TEXTS, batch_size=2))
    got = json.loads(run_python(SPAWNED_PIPE, json.dumps([str(saved), overrides, TEXTS])))
    assert [[tuple(e) for e in doc] for doc in got] == want


def test_pipe_as_tuples_keeps_each_context(nlp, expected):
    piped = list(nlp.pipe([(text, {"id": i}) for i, text in enumerate(TEXTS)], as_tuples=True))
    assert [context["id"] for _, context in piped] == list(range(len(TEXTS)))
    assert entities(doc for doc, _ in piped) == expected


def test_to_bytes_into_a_pipeline_built_from_the_config(nlp, expected):
    fresh = spacy.util.get_lang_class("en").from_config(nlp.config)
    fresh.from_bytes(nlp.to_bytes())
    assert entities(fresh.pipe(TEXTS)) == expected


def test_select_pipes(nlp, expected):
    with nlp.select_pipes(disable=["bert_ner"]):
        assert all(not doc.ents for doc in nlp.pipe(TEXTS))
    others = [name for name in nlp.pipe_names if name not in ("transformer", "bert_ner")]
    with nlp.select_pipes(disable=others):
        assert entities(nlp.pipe(TEXTS)) == expected
    assert entities(nlp.pipe(TEXTS)) == expected


def test_docbin_round_trip_keeps_entities_and_scores(nlp, expected):
    stored = DocBin(docs=nlp.pipe(TEXTS), store_user_data=True).to_bytes()
    assert entities(DocBin().from_bytes(stored).get_docs(nlp.vocab)) == expected


RULES = [{"label": "GPE", "pattern": "paris"}, {"label": "EVENT", "pattern": "met"}]


def ruled(doc: Doc) -> list[tuple[str, str, int, int, None]]:
    """The ruler's matches in `doc` (no score: bert_ner did not predict them)."""
    words = [token.text for token in doc]
    return [
        (rule["pattern"], rule["label"], i, i + 1, None)
        for i, word in enumerate(words)
        for rule in RULES
        if word == rule["pattern"]
    ]


def merged(first: list, second: list) -> list:
    """`first`'s entities, plus those of `second` that overlap none of them, in doc order."""
    taken = {i for _, _, start, end, _ in first for i in range(start, end)}
    kept = [e for e in second if not taken & set(range(e[2], e[3]))]
    return sorted([*first, *kept], key=lambda e: e[2])


@pytest.mark.parametrize(
    "ruler_first,overwrite", [(True, True), (True, False), (False, True), (False, False)]
)
def test_entity_ruler_before_or_after_with_overwrite_ents_either_way(
    nlp, expected, ruler_first, overwrite
):
    """Before bert_ner, bert_ner's `overwrite_ents` decides; after it, the ruler's own."""
    placement = {"before": "bert_ner"} if ruler_first else {"after": "bert_ner"}
    ruler = nlp.add_pipe("entity_ruler", config={"overwrite_ents": overwrite}, **placement)
    ruler.add_patterns(RULES)
    if ruler_first:
        nlp.get_pipe("bert_ner").cfg["overwrite_ents"] = overwrite
    docs = list(nlp.pipe(TEXTS))
    rules = [ruled(doc) for doc in docs]
    if ruler_first:
        want = (
            expected if overwrite else [merged(r, e) for r, e in zip(rules, expected, strict=True)]
        )
    else:
        want = [
            merged(r, e) if overwrite else merged(e, r)
            for r, e in zip(rules, expected, strict=True)
        ]
    assert any(rules)
    assert entities(docs) == want


def test_evaluate_scores_what_pipe_predicts(nlp):
    examples = gold_examples(nlp)
    scores = nlp.evaluate(examples)
    predicted = nlp.pipe(eg.reference.text for eg in examples)
    by_hand = get_ner_prf(
        [Example(doc, eg.reference) for doc, eg in zip(predicted, examples, strict=True)]
    )
    assert scores["ents_f"] > 0.5
    for key in ("ents_p", "ents_r", "ents_f", "ents_per_type"):
        assert scores[key] == by_hand[key], key


# -- spaCy's commands --------------------------------------------------------------------


@pytest.fixture(scope="module")
def gold_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gold") / "gold.spacy"
    DocBin(docs=[eg.reference for eg in gold_examples(spacy.blank("en"))] * 2).to_disk(path)
    return path


@pytest.fixture(scope="module")
def project_config(
    architecture: str, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The project's config of the architecture on the tiny encoder without a head, with the
    labels `spacy assemble` initializes from when it reads no corpus."""
    name, encoder = CONFIGS[architecture]
    config = Config().from_disk(REPO / "configs" / name, interpolate=False)
    config["components"][encoder]["model"]["name"] = str(tiny_encoder)
    labels = {"bert_ner": {"labels": ["LOC", "PER"]}}
    if architecture == "listener":
        labels["tagger"] = {"labels": ["DT", "IN", "NNP", "VBD"]}
    config["initialize"]["components"] = labels
    path = tmp_path_factory.mktemp("config") / name
    config.to_disk(path)
    return path


@pytest.mark.slow
def test_spacy_debug_config(project_config, gold_corpus):
    paths = ["--paths.train", str(gold_corpus), "--paths.dev", str(gold_corpus)]
    out = spacy_cli("debug", "config", str(project_config), *paths)
    assert "Config is valid" in out.stdout


@pytest.mark.slow
def test_spacy_init_fill_config_keeps_the_config(project_config, tmp_path):
    spacy_cli("init", "fill-config", str(project_config), str(tmp_path / "filled.cfg"))
    original = Config().from_disk(project_config, interpolate=False)
    filled = Config().from_disk(tmp_path / "filled.cfg", interpolate=False)
    for section in ("components", "corpora", "training", "initialize"):
        assert filled[section] == original[section], section


@pytest.mark.slow
def test_spacy_assemble_without_corpora(project_config, architecture, tmp_path):
    nulls = ["--paths.train", "null", "--paths.dev", "null"]
    spacy_cli("assemble", str(project_config), str(tmp_path / "assembled"), *nulls)
    nlp = spacy.load(tmp_path / "assembled")
    assert nlp.get_pipe("bert_ner").labels == ("LOC", "PER")
    assert len(list(nlp.pipe(TEXTS))) == len(TEXTS)  # a new head: it runs, knows nothing yet


@pytest.mark.slow
def test_spacy_evaluate_gives_nlp_evaluates_scores(saved, gold_corpus, tmp_path):
    spacy_cli("evaluate", str(saved), str(gold_corpus), "--output", str(tmp_path / "m.json"))
    scores = json.loads((tmp_path / "m.json").read_text())
    nlp = spacy.load(saved)
    docs = DocBin().from_disk(gold_corpus).get_docs(nlp.vocab)
    by_api = nlp.evaluate([Example(nlp.make_doc(doc.text), doc) for doc in docs])
    for key in ("ents_p", "ents_r", "ents_f", "ents_per_type"):
        assert scores[key] == by_api[key], key


LOAD_BY_NAME = """
import json, sys
import spacy
nlp = spacy.load(sys.argv[1])
print(json.dumps([
    [(e.text, e.label_, e.start, e.end, e._.bert_ner_score) for e in doc.ents]
    for doc in nlp.pipe(json.loads(sys.argv[2]))
]))
"""


@pytest.mark.slow
def test_spacy_package_installs_and_loads_by_name_in_a_fresh_process(
    architecture, saved, expected, tmp_path
):
    name = f"contract_{architecture}"
    spacy_cli(
        "package", str(saved), str(tmp_path), "--name", name, "--version", "0.0.1",
        "--build", "none",
    )  # fmt: skip
    root = tmp_path / f"en_{name}-0.0.1"
    requirements = " ".join(spacy.util.load_meta(root / "meta.json")["requirements"])
    assert "spacy-bert-ner" in requirements
    assert ("spacy-transformers" in requirements) == (architecture == "listener")
    site, wheels = tmp_path / "site", tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "-q"]
    offline = ["--no-deps", "--no-index"]
    built = subprocess.run(
        [*pip, "wheel", str(root), *offline, "--no-build-isolation", "-w", str(wheels)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("*.whl")
    installed = subprocess.run(
        [*pip, "install", *offline, "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    code = f"import sys; sys.path.insert(0, {str(site)!r})\n" + LOAD_BY_NAME
    got = json.loads(run_python(code, f"en_{name}", json.dumps(TEXTS), cwd=tmp_path))
    assert [[tuple(e) for e in doc] for doc in got] == expected
