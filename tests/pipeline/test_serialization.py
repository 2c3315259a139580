"""Saved pipelines: the format of earlier releases still loads, and `exclude` is honoured."""

import json
from pathlib import Path

import numpy as np
import pytest
import spacy

from spacy_bert_ner.pipeline.losses import log_softmax
from spacy_bert_ner.pipeline.serialization import VERSION_KEY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "saved_v0_1_0"
#: Pipelines saved on 2026-12-07, before the model settings became one typed object: the tiny
#: model trained as `conftest.train_tiny` (with case embeddings, 32-piece windows, stride 8,
#: precision "fp32") and the tiny multi-task pipeline of `conftest.train_multitask` (bert_ner
#: listening to a shared transformer). expected.json holds what each predicted then.
SAVED_TODAY = ["saved_2026_12_07_standalone", "saved_2026_12_07_listener"]
TEXT = "Angela Merkel met Macron in Paris."


def test_a_pipeline_saved_by_0_1_0_predicts_the_same_entities_and_scores():
    """The tiny pipeline in tests/fixtures was trained and saved (case embeddings on) by
    spacy-bert-ner 0.1.0 before the package's re-layout; expected.json holds what it
    predicted then. Its scores were the mean probability of each entity's tags, which the
    logits must still give; the entities' scores are now their posterior probabilities."""
    expected = json.loads((FIXTURE / "expected.json").read_text())
    nlp = spacy.load(FIXTURE / "pipeline")
    pipe = nlp.get_pipe("bert_ner")
    assert pipe.cfg["temperature"] == 1.0  # saved before calibration existed
    docs = list(nlp.pipe([case["text"] for case in expected]))
    assert sum(len(case["ents"]) for case in expected) > 5  # the fixture predicts something
    for doc, case in zip(docs, expected, strict=True):
        got = [[e.start_char, e.end_char, e.label_] for e in doc.ents]
        assert got == [ent[:3] for ent in case["ents"]], doc.text
        log_probs = log_softmax(pipe.predict([nlp.make_doc(doc.text)])[0], np)
        scheme = pipe.tag_scheme
        means = [m for *_, m in scheme.entities(scheme.decode(log_probs), np.exp(log_probs))]
        assert means == pytest.approx([ent[3] for ent in case["ents"]], abs=1e-5)
        assert all(0.0 < e._.bert_ner_score <= 1.0 for e in doc.ents)


@pytest.mark.parametrize("fixture", SAVED_TODAY)
def test_a_pipeline_saved_before_typed_settings_predicts_the_same_entities(fixture):
    """Both architectures' saved pipelines load with the code of today and predict exactly
    the entities, with the scores, they predicted when saved: on texts of one window, with
    tokens that have no wordpiece, and of several windows."""
    expected = json.loads((FIXTURES / fixture / "expected.json").read_text())
    nlp = spacy.load(FIXTURES / fixture / "pipeline")
    assert sum(len(case["ents"]) for case in expected) > 40  # the fixture predicts something
    docs = nlp.pipe([case["text"] for case in expected])
    for doc, case in zip(docs, expected, strict=True):
        got = [[e.start_char, e.end_char, e.label_] for e in doc.ents]
        assert got == [ent[:3] for ent in case["ents"]], doc.text
        scores = [e._.bert_ner_score for e in doc.ents]
        assert scores == pytest.approx([ent[3] for ent in case["ents"]], abs=1e-5), doc.text


@pytest.fixture(scope="module")
def nlp(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    nlp("load the model")
    return nlp


def test_component_to_disk_leaves_out_excluded_parts(nlp, tmp_path):
    pipe = nlp.get_pipe("bert_ner")
    pipe.to_disk(tmp_path / "no_model", exclude=["model"])
    assert sorted(p.name for p in (tmp_path / "no_model").iterdir()) == ["cfg"]
    pipe.to_disk(tmp_path / "no_cfg", exclude=["cfg"])
    assert sorted(p.name for p in (tmp_path / "no_cfg").iterdir()) == ["model"]


def test_nlp_to_disk_exclude_reaches_the_component(nlp, tmp_path):
    nlp.to_disk(tmp_path / "without", exclude=["bert_ner"])
    assert not (tmp_path / "without" / "bert_ner").exists()
    nlp.to_disk(tmp_path / "with", exclude=["vocab"])
    assert (tmp_path / "with" / "bert_ner" / "model" / "model.safetensors").is_file()


def test_from_disk_exclude_keeps_what_the_component_had(nlp, tmp_path):
    pipe = nlp.get_pipe("bert_ner")
    pipe.to_disk(tmp_path / "saved")
    cfg = json.loads((tmp_path / "saved" / "cfg").read_text())
    assert cfg[VERSION_KEY]
    (tmp_path / "saved" / "cfg").write_text(json.dumps({**cfg, "overwrite_ents": False}))
    other = spacy.blank("en").add_pipe("bert_ner", config={"model": "never/loaded"})
    other.from_disk(tmp_path / "saved", exclude=["model"])
    assert other.cfg["overwrite_ents"] is False
    assert other.model.layers == []  # the model was not read
    other.from_disk(tmp_path / "saved", exclude=["cfg"])
    assert other.labels == pipe.labels


def test_bytes_round_trip_with_exclude(nlp):
    pipe = nlp.get_pipe("bert_ner")
    other = spacy.blank("en").add_pipe("bert_ner", config={"model": "never/loaded"})
    other.from_bytes(pipe.to_bytes(exclude=["model"]), exclude=["model"])
    assert other.cfg == pipe.cfg and other.model.layers == []
