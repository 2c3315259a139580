"""spaCy's own commands on a bert_ner pipeline: `spacy find-threshold` (through the component's
`threshold`), `spacy benchmark speed` and `accuracy`, and `spacy package` with the meta our
workflow writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.cli.find_threshold import find_threshold
from spacy.tokens import DocBin

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.evaluation.package_meta import package_meta

from .conftest import tiny_examples

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gold") / "gold.spacy"
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))] * 3).to_disk(path)
    return path


def spacy_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m spacy ...` from the repository, so it loads this checkout's component."""
    out = subprocess.run(
        [sys.executable, "-m", "spacy", *args], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_find_threshold_trades_recall_for_precision(trained_tiny, gold):
    _, _, recalls = find_threshold(
        str(trained_tiny), gold, "bert_ner", "threshold", "ents_r", n_trials=21
    )
    assert recalls[0.0] > 0.5  # the trained tiny model finds most entities
    assert recalls[1.0] == 0.0  # no entity scores 1: nothing is left
    assert len(set(recalls.values())) > 2  # the threshold moves the figure
    values = list(recalls.values())
    assert values == sorted(values, reverse=True)  # a higher threshold never finds more


@pytest.mark.slow
def test_benchmark_speed(trained_tiny, gold):
    out = spacy_cli(
        "benchmark",
        "speed",
        str(trained_tiny),
        str(gold),
        "--batches",
        "30",
        "--batch-size",
        "4",
        "--warmup",
        "1",
    )
    assert "words/s" in out.stdout


@pytest.mark.slow
def test_benchmark_accuracy(trained_tiny, gold, tmp_path):
    spacy_cli(
        "benchmark", "accuracy", str(trained_tiny), str(gold), "--output", str(tmp_path / "m.json")
    )
    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["ents_f"] > 0.5


METRICS = {
    "conlleval": {
        "precision": 0.9, "recall": 0.8, "f1": 0.847, "support": 10,
        "per_type": {"PER": {"precision": 1.0, "recall": 0.9, "f1": 0.947, "support": 5}},
    },
    "words_per_second": 1234.5, "n_docs": 3, "data_path": "corpus/eng.testb.spacy",
}  # fmt: skip


@pytest.mark.slow
def test_spacy_package_carries_description_license_sources_and_test_performance(
    trained_tiny, tmp_path
):
    srsly.write_json(tmp_path / "metrics.json", METRICS)
    meta = package_meta(REPO / "configs" / "package_meta.json", tmp_path / "metrics.json")
    srsly.write_json(tmp_path / "meta.json", meta)
    (tmp_path / "packages").mkdir()
    spacy_cli(
        "package", str(trained_tiny), str(tmp_path / "packages"), "--name", "tiny_meta_test",
        "--version", "0.0.1", "--meta-path", str(tmp_path / "meta.json"), "--build", "none",
    )  # fmt: skip
    package = tmp_path / "packages" / "en_tiny_meta_test-0.0.1"
    packaged = json.loads((package / "meta.json").read_text())
    assert "CoNLL-2003" in packaged["description"]
    assert "Research use only" in packaged["license"]
    assert any("research use only" in s["license"] for s in packaged["sources"])
    assert packaged["performance"]["ents_f"] == 0.847
    assert packaged["performance"]["ents_per_type"]["PER"]["r"] == 0.9
    assert packaged["performance"]["speed"] == 1234.5
    readme = (package / "README.md").read_text()
    assert "CoNLL-2003" in readme and "84.70" in readme  # spaCy's README table of the figures


def test_package_meta_needs_evaluate_metrics_and_a_full_template(tmp_path):
    srsly.write_json(tmp_path / "metrics.json", {"ents_f": 0.8})
    with pytest.raises(BertNERError, match="not a metrics file"):
        package_meta(REPO / "configs" / "package_meta.json", tmp_path / "metrics.json")
    srsly.write_json(tmp_path / "template.json", {"description": "x"})
    with pytest.raises(BertNERError, match="missing author, license, sources"):
        package_meta(tmp_path / "template.json", tmp_path / "metrics.json")
