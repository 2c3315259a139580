"""The spaCy project end to end: `spacy project run all` on slices of CoNLL-2003 with the tiny
BERT, offline, then the packaged wheel installed and loaded by name.

The project runs in a temporary copy (project.yml and configs/ only) whose assets/ the test
fills with the first lines of each CoNLL file, as a user copies the files in by hand. The
network is shut for the run (hub and pip offline), which is the point: nothing may be fetched.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from thinc.api import Config

from spacy_bert_ner.training.distill import document_key, read_teacher_distributions

# Every test here runs a `spacy project` workflow end to end in subprocesses.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONLL_FILES = ("eng.train", "eng.testa", "eng.testb")
SLICE_LINES = 300
# Not the project.yml default: never clobber a package a developer installed on purpose.
PACKAGE_NAME = "bert_ner_project_test"
PACKAGE_VERSION = "0.0.1"
PACKAGE = f"en_{PACKAGE_NAME}"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PIP_NO_INDEX": "1"}

# Predictions of training/model-best and of the installed package must be the same:
# the wheel has to carry the fine-tuned weights, not the base model's.
LOAD_SCRIPT = """
import json, sys
import spacy
text = "Angela Merkel met Emmanuel Macron in Paris . EU officials in Brussels agreed ."
installed = spacy.load(sys.argv[1])
trained = spacy.load(sys.argv[2])
def ents(nlp):
    doc = nlp(text)
    assert doc.has_annotation("ENT_IOB")
    return [[e.start, e.end, e.label_] for e in doc.ents]
print(json.dumps({
    "lang": installed.lang,
    "pipe_names": installed.pipe_names,
    "meta_name": installed.meta["name"],
    "ents": ents(installed),
    "trained_ents": ents(trained),
    "path": str(installed.path),
}))
"""


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **OFFLINE},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{args[:6]} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return result


@pytest.fixture
def project(tmp_path: Path, data_dir: Path) -> Path:
    """A copy of the project whose assets/ holds the first SLICE_LINES lines of each file."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project / "project.yml")
    shutil.copytree(ROOT / "configs", project / "configs")
    (project / "assets").mkdir()
    for name in CONLL_FILES:
        with open(data_dir / "conll2003" / name, encoding="utf8") as source:
            head = [line for _, line in zip(range(SLICE_LINES), source, strict=False)]
        (project / "assets" / name).write_text("".join(head), encoding="utf8")
    return project


def project_run(workflow: str, project: Path, **variables: object) -> str:
    """`spacy project run <workflow>` in `project`, each keyword a `--vars.<name>` override;
    its standard output."""
    args = [sys.executable, "-m", "spacy", "project", "run", workflow, str(project)]
    for name, value in variables.items():
        args += [f"--vars.{name}", str(value)]
    return run(args, cwd=project).stdout


def with_encoder(project: Path, config: str, component: str, encoder: Path) -> str:
    """A copy of `configs/<config>` whose `component` loads `encoder` instead of the embedded
    MiniLM, written beside it; its path in the project."""
    text = (project / "configs" / config).read_text()
    embedded = f'[components.{component}.model.name]\n@misc = "spacy_bert_ner.minilm.v1"\n'
    assert embedded in text, f"{config} no longer embeds MiniLM in {component}"
    model = f"[components.{component}.model]\n"
    text = text.replace(embedded, "").replace(model, f'{model}name = "{encoder}"\n')
    copy = f"configs/tiny_{config}"
    (project / copy).write_text(text)
    return copy


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_project_run_all_offline_and_the_packaged_wheel(project: Path, tiny_bert: Path) -> None:
    variables = {
        "model_name": tiny_bert,
        "max_steps": 4,
        "eval_frequency": 2,
        "package_name": PACKAGE_NAME,
        "package_version": PACKAGE_VERSION,
    }
    output = project_run("all", project, **variables)
    assert f"--components.bert_ner.model.name {tiny_bert}" in output  # the override

    for name in CONLL_FILES:
        assert (project / "corpus" / f"{name}.spacy").stat().st_size > 0
    model_best = project / "training" / "model-best"
    assert (model_best / "config.cfg").is_file() and (model_best / "meta.json").is_file()
    assert any((model_best / "bert_ner").rglob("*.safetensors"))

    metrics = json.loads((project / "metrics" / "metrics.json").read_text())
    for mode in ("conlleval", "strict", "spacy"):
        assert {"precision", "recall", "f1"} <= set(metrics[mode]), mode
        assert 0.0 <= metrics[mode]["f1"] <= 1.0
    assert metrics["conlleval"]["support"] > 0 and metrics["n_docs"] > 0
    assert is_png(project / "metrics" / "scores.png")
    assert "<html" in (project / "metrics" / "errors.html").read_text().lower()

    package_dir = project / "packages" / f"{PACKAGE}-{PACKAGE_VERSION}"
    wheel = package_dir / "dist" / f"{PACKAGE}-{PACKAGE_VERSION}-py3-none-any.whl"
    assert wheel.is_file()
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"{PACKAGE}-{PACKAGE_VERSION}.dist-info/METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("spacy-bert-ner" in line for line in requires), requires

    # Nothing changed: every step is skipped on a second run.
    again = project_run("all", project, **variables)
    for command in ("convert", "train", "evaluate", "package"):
        assert f"Skipping '{command}': nothing changed" in again, again

    pip = [sys.executable, "-m", "pip"]
    run([*pip, "install", "--no-deps", "--no-index", str(wheel)], cwd=project)
    try:
        # A fresh interpreter elsewhere, so the project dir cannot shadow the package.
        result = run(
            [sys.executable, "-c", LOAD_SCRIPT, PACKAGE, str(model_best)], cwd=project.parent
        )
        loaded = json.loads(result.stdout.strip().splitlines()[-1])
        assert loaded["lang"] == "en"
        assert loaded["pipe_names"] == ["bert_ner"]
        assert loaded["meta_name"] == PACKAGE_NAME
        assert project.as_posix() not in loaded["path"]  # loaded from site-packages
        assert loaded["ents"] == loaded["trained_ents"]
    finally:
        subprocess.run([*pip, "uninstall", "-y", PACKAGE], capture_output=True, timeout=120)


def test_project_run_continual_offline(project: Path, tiny_bert: Path) -> None:
    """The `continual` workflow on the slices: base model without MISC, then the three
    continuations taught MISC from a handful of sentences, scored on the test slice."""
    project_run(
        "continual",
        project,
        model_name=tiny_bert,
        max_steps=2,
        eval_frequency=2,
        n_new=4,
        continual_epochs=1,
    )
    for name in ("old-train", "old-dev", "new-train"):
        assert (project / "corpus" / "continual" / f"{name}.spacy").stat().st_size > 0
    metrics = json.loads((project / "metrics" / "continual.json").read_text())
    assert metrics["old_types"] == ["LOC", "ORG", "PER"]
    assert metrics["n_new_docs"] == 4 and metrics["n_new_entities"] >= 4
    models = metrics["models"]
    assert list(models) == ["base", "naive", "rehearsal", "rehearsal+pseudo"]
    for name, result in models.items():
        assert 0.0 <= result["old_f1"] <= 1.0 and 0.0 <= result["new_f1"] <= 1.0, name
        assert set(result["old_per_type"]) <= {"LOC", "ORG", "PER"}, name
        if name != "base":
            assert result["train_seconds"] > 0 and result["steps"] >= 1, name
    assert models["base"]["new_f1"] == 0.0
    assert models["rehearsal+pseudo"]["pseudo_label_seconds"] > 0
    assert is_png(project / "metrics" / "continual.png")


def test_project_run_active_learning_offline(project: Path, tiny_encoder: Path) -> None:
    """The `active-learning` workflow on the slices, with cpu.cfg's encoder swapped for the
    tiny one: a base model, then each chain's rounds, scored on dev, with its plot."""
    project_run(
        "active-learning",
        project,
        config=with_encoder(project, "cpu.cfg", "bert_ner", tiny_encoder),
        al_seed_sentences=6,
        al_sizes="3,6",
        al_random_seeds=1,
    )
    metrics = json.loads((project / "metrics" / "active-learning.json").read_text())
    assert [c["strategy"] for c in metrics["chains"]] == ["uncertainty", "random"]
    assert all(c["added"] == [0, 3, 6] for c in metrics["chains"])
    assert metrics["settings"]["seed_sentences"] == 6
    assert is_png(project / "metrics" / "active-learning.png")


def test_project_run_multitask_offline(project: Path, tiny_bert: Path) -> None:
    """The `multitask` workflow on the slices, with cpu_multitask.cfg's encoder swapped for the
    tiny BERT: one transformer, a tagger learning CoNLL's POS column and bert_ner; the metrics
    hold seqeval's entity scores and the tag accuracy."""
    project_run(
        "multitask",
        project,
        multitask_config=with_encoder(project, "cpu_multitask.cfg", "transformer", tiny_bert),
        max_steps=2,
        eval_frequency=2,
    )
    model_best = project / "training" / "multitask" / "model-best"
    assert (model_best / "config.cfg").is_file()
    metrics = json.loads((project / "metrics" / "multitask.json").read_text())
    assert 0.0 <= metrics["conlleval"]["f1"] <= 1.0 and metrics["conlleval"]["support"] > 0
    assert 0.0 <= metrics["tag_acc"] <= 1.0  # reported: two updates teach the tagger little
    assert is_png(project / "metrics" / "multitask.png")


def test_project_run_distill_offline(project: Path, tiny_bert: Path) -> None:
    """The `distill` workflow on the slices with the tiny BERT: two teachers (seeds 1 and 2),
    their averaged distributions for train, a student trained on them, scored on test; a
    second run changes nothing, and a teacher removed is the only one trained again."""
    variables = {
        "model_name": tiny_bert,
        "max_steps": 2,
        "eval_frequency": 2,
        "distill_teachers": 2,
    }
    output = project_run("distill", project, **variables)
    assert "teachers to train (seeds): 1 2" in output
    teachers = project / "training" / "teachers"
    for seed in (1, 2):
        config = Config().from_disk(teachers / f"seed-{seed}" / "model-best" / "config.cfg")
        assert config["system"]["seed"] == seed
    distributions = read_teacher_distributions(project / "training" / "teachers.msgpack")
    assert [t["path"] for t in distributions.teachers] == [
        f"training/teachers/seed-{seed}/model-best" for seed in (1, 2)
    ]
    train_docs = DocBin().from_disk(project / "corpus" / "eng.train.spacy").get_docs(Vocab())
    assert len(distributions.docs) == len({document_key(doc) for doc in train_docs}) > 0
    student = Config().from_disk(project / "training" / "student" / "model-best" / "config.cfg")
    assert student["corpora"]["train"]["@readers"] == "spacy_bert_ner.TeacherRuns.v1"
    metrics = json.loads((project / "metrics" / "student.json").read_text())
    assert 0.0 <= metrics["conlleval"]["f1"] <= 1.0 and metrics["conlleval"]["support"] > 0
    assert is_png(project / "metrics" / "student.png")

    again = project_run("distill", project, **variables)
    for command in ("distill-teachers", "distill-predict", "distill-student", "distill-evaluate"):
        assert f"Skipping '{command}': nothing changed" in again, again

    shutil.rmtree(teachers / "seed-2")
    rerun = project_run("distill", project, **variables)
    assert "teachers to train (seeds): 2" in rerun


def test_project_run_adapt_offline(project: Path, tiny_bert: Path, data_dir: Path) -> None:
    """The `adapt` workflow: the base model on the CoNLL slices, adapted on a slice of the SEC
    filings' FIN5 (copied into assets/ as the docs say), scored on FIN3 and on CoNLL test."""
    for name in ("FIN5.txt", "FIN3.txt"):
        with open(data_dir / "sec-filings" / name, encoding="utf8") as source:
            head = [line for _, line in zip(range(2 * SLICE_LINES), source, strict=False)]
        (project / "assets" / name).write_text("".join(head), encoding="utf8")
    variables = {"model_name": tiny_bert, "max_steps": 2, "eval_frequency": 2,
                 "adapt_max_steps": 4, "adapt_eval_frequency": 2}  # fmt: skip
    project_run("adapt", project, **variables)
    summary = json.loads((project / "training" / "adapted" / "adapt.json").read_text())
    assert summary["rehearse"] == "corpus/eng.train.spacy" and summary["dev"] == "20% of TRAIN"
    assert summary["n_dev_docs"] > 0 and summary["settings"]["max_steps"] == 4
    for name in ("adapt-test", "adapt-conll"):
        metrics = json.loads((project / "metrics" / f"{name}.json").read_text())
        assert 0.0 <= metrics["conlleval"]["f1"] <= 1.0
        assert metrics["generalisation"]["unseen"]["support"] > 0, name
    again = project_run("adapt", project, **variables)
    for command in ("adapt-run", "adapt-evaluate"):
        assert f"Skipping '{command}': nothing changed" in again, again
