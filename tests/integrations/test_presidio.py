"""Presidio's `AnalyzerEngine` over the tiny pipeline: our entities under Presidio's names,
with our scores, so a threshold on Presidio's side keeps exactly the entities whose score is
above it. presidio-analyzer is an extra (`.ci/run` installs it); without it these tests are
skipped, except under CI, where they fail."""

import os
import sys
from pathlib import Path

import pytest
import spacy

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.integrations.presidio import presidio_nlp_engine

TEXTS = ["angela merkel met macron in paris", "the berlin of angela", "paris and berlin met merkel"]
NAMES = {"PER": "PERSON", "LOC": "LOCATION"}


@pytest.fixture(scope="module")
def presidio():
    try:
        import presidio_analyzer
    except ImportError:
        problem = "needs presidio-analyzer: pip install 'spacy-bert-ner[presidio]'"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return presidio_analyzer


@pytest.fixture(scope="module")
def nlp(trained_tiny: Path):
    return spacy.load(trained_tiny)


def ours(nlp, text: str) -> list[tuple[int, int, str, float]]:
    return [(e.start_char, e.end_char, NAMES[e.label_], e._.bert_ner_score) for e in nlp(text).ents]


def found(analyzer, text: str, threshold: float) -> list[tuple[int, int, str, float]]:
    results = analyzer.analyze(
        text, language="en", entities=list(NAMES.values()), score_threshold=threshold
    )
    return sorted((r.start, r.end, r.entity_type, r.score) for r in results)


def test_a_threshold_in_presidio_keeps_exactly_our_entities_above_it(presidio, nlp):
    analyzer = presidio.AnalyzerEngine(
        nlp_engine=presidio_nlp_engine(nlp), supported_languages=["en"]
    )
    expected = {text: ours(nlp, text) for text in TEXTS}
    scores = sorted({entity[3] for entities in expected.values() for entity in entities})
    assert len(scores) >= 3, "the tiny pipeline finds entities with scores that differ"
    assert len({0.85, *scores}) > 1  # not Presidio's one fixed score
    for threshold in [0.0, *scores, 1.0]:
        for text, entities in expected.items():
            kept = sorted(entity for entity in entities if entity[3] >= threshold)
            assert found(analyzer, text, threshold) == kept


def test_a_label_without_a_presidio_name_is_left_out_and_the_mapping_can_be_given(presidio, nlp):
    engine = presidio_nlp_engine(nlp, entity_mapping={"PER": "PERSON"})
    assert engine.get_supported_entities() == ["PERSON"]
    analyzer = presidio.AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    results = analyzer.analyze(TEXTS[0], language="en", entities=["PERSON", "LOCATION"])
    assert {r.entity_type for r in results} == {"PERSON"}
    assert [e.label_ for e in nlp(TEXTS[0]).ents].count("LOC")  # there was one to leave out


def test_a_pipeline_is_loaded_by_path_and_the_docs_keep_our_labels(presidio, trained_tiny):
    engine = presidio_nlp_engine(str(trained_tiny))
    artifacts = engine.process_text(TEXTS[0], "en")
    assert {e.label_ for e in artifacts.entities} <= set(NAMES.values())
    doc = engine.nlp["en"](TEXTS[0])
    assert {e.label_ for e in doc.ents} <= set(NAMES)  # Presidio relabelled copies


def test_without_presidio_it_is_one_line_naming_the_extra(monkeypatch, nlp):
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    monkeypatch.setitem(sys.modules, "presidio_analyzer.nlp_engine", None)
    with pytest.raises(BertNERError, match=r"spacy-bert-ner\[presidio\]"):
        presidio_nlp_engine(nlp)
