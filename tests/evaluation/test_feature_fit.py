"""`calibrate --method features`: the pipeline keeps its training mentions, the calibrated
copy decodes exactly the same entities with other scores, and `--target-precision` saves
thresholds that `threshold = "guaranteed"` applies."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.evaluation.feature_fit import fit_on_dev
from spacy_bert_ner.pipeline.mentions import TrainingMentions

from ..conftest import tiny_examples

TEXTS = ["angela merkel met macron in paris", "the berlin of angela and merkel met paris"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    path = tmp_path_factory.mktemp("gold") / "gold.spacy"
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))] * 2).to_disk(path)
    return path


def spans(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def test_initialize_keeps_the_training_mentions_and_they_are_saved(trained_tiny):
    pipe = spacy.load(trained_tiny).get_pipe("bert_ner")
    assert pipe.mentions.contains("angela merkel", "PER") and pipe.mentions.contains("paris", "LOC")
    assert not pipe.mentions.contains("paris", "PER")
    copy = spacy.blank("en").add_pipe(
        "bert_ner", config={"model": str(trained_tiny / "bert_ner" / "model")}
    )
    copy.from_bytes(pipe.to_bytes())
    assert copy.mentions.to_bytes() == pipe.mentions.to_bytes()


def test_a_pipeline_saved_before_mentions_loads_with_none():
    pipe = spacy.load(FIXTURES / "saved_2026_12_07_standalone" / "pipeline").get_pipe("bert_ner")
    assert not pipe.mentions and pipe.cfg["calibrator"] is None


@pytest.fixture(scope="module")
def calibrated(trained_tiny, gold, tmp_path_factory):
    out = tmp_path_factory.mktemp("calibrated") / "pipeline"
    result = CliRunner().invoke(app, [
        "calibrate", str(trained_tiny), str(gold), str(out), "--train", str(gold),
        "--target-precision", "0.6", "--risk", "0.2",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_features_change_scores_never_entities(trained_tiny, calibrated):
    before, after = spacy.load(trained_tiny), spacy.load(calibrated)
    pipe = after.get_pipe("bert_ner")
    assert pipe.cfg["calibrator"]["version"] == 1
    saved = json.loads((calibrated / "bert_ner" / "cfg").read_text())
    weights = pipe.cfg["calibrator"]["weights"]
    assert saved["calibrator"]["weights"] == pytest.approx(weights, rel=1e-9)
    assert TrainingMentions.from_bytes((calibrated / "bert_ner" / "mentions").read_bytes())
    moved = 0
    for old, new in zip(before.pipe(TEXTS * 3), after.pipe(TEXTS * 3), strict=True):
        assert spans(old) == spans(new)
        moved += sum(a._.bert_ner_score != b._.bert_ner_score
                     for a, b in zip(old.ents, new.ents, strict=True))  # fmt: skip
    assert moved


def test_temperature_method_fits_no_calibrator(trained_tiny, gold, tmp_path):
    out = tmp_path / "t"
    result = CliRunner().invoke(
        app, ["calibrate", str(trained_tiny), str(gold), str(out), "--method", "temperature"]
    )
    assert result.exit_code == 0, result.output
    pipe = spacy.load(out).get_pipe("bert_ner")
    assert pipe.cfg["calibrator"] is None and pipe.cfg["temperature"] != 1.0


def test_temperature_method_certifies_thresholds_on_its_span_probabilities(
    trained_tiny, gold, tmp_path
):
    out = tmp_path / "t"
    result = CliRunner().invoke(app, [
        "calibrate", str(trained_tiny), str(gold), str(out), "--method", "temperature",
        "--target-precision", "0.6", "--risk", "0.2",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    pipe = spacy.load(out).get_pipe("bert_ner")
    assert pipe.cfg["calibrator"] is None
    chosen = pipe.cfg["guaranteed_thresholds"]
    assert set(chosen) == {"LOC", "PER"} and any(t is not None for t in chosen.values())


def test_no_entity_decoded_on_dev_fits_no_calibrator(trained_tiny):
    """A model that decodes nothing on dev (barely trained) keeps its temperature alone: a
    fit on no entities has no weights, and NaN weights made an unreadable cfg."""
    pipe = spacy.load(trained_tiny).get_pipe("bert_ner")
    nothing = SimpleNamespace(spans=[[], []], correct=np.zeros(0, dtype=bool))
    fitted = fit_on_dev(pipe, nothing, True, 0.9, 0.1)
    assert "calibrator" not in fitted and pipe.cfg["calibrator"] is None
    json.dumps(pipe.cfg, allow_nan=False)


def test_guaranteed_threshold_applies_the_saved_thresholds(calibrated):
    chosen = spacy.load(calibrated).get_pipe("bert_ner").cfg["guaranteed_thresholds"]
    assert set(chosen) == {"LOC", "PER"}
    nlp = spacy.load(calibrated, config={"components": {"bert_ner": {"threshold": "guaranteed"}}})
    everything = spacy.load(calibrated)
    for doc, full in zip(nlp.pipe(TEXTS), everything.pipe(TEXTS), strict=True):
        expected = [
            (e.start, e.end, e.label_) for e in full.ents
            if chosen[e.label_] is not None and e._.bert_ner_score >= chosen[e.label_]
        ]  # fmt: skip
        assert spans(doc) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "isotonic"], "unknown --method 'isotonic'"),
        (["--target-precision", "1.5"], "--target-precision: 1.5 is not between 0 and 1"),
        (["--risk", "0"], "--risk: 0.0 is not between 0 and 1"),
    ],
)
def test_bad_options_are_one_line(trained_tiny, gold, tmp_path, args, message):
    result = CliRunner().invoke(
        app, ["calibrate", str(trained_tiny), str(gold), str(tmp_path / "o"), *args]
    )
    assert result.exit_code != 0 and message in result.output
