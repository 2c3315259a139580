"""`estimate`: precision is the mean calibrated score, recall counts the entities the model
expects to have missed, unreadable lines are named and counted, and a .spacy file's gold
entities are never read."""

import json

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.evaluation.estimate import Tally, missed_starts
from spacy_bert_ner.posteriors import posteriors
from spacy_bert_ner.tags import TagScheme

TEXTS = ["angela merkel met macron in paris", "the berlin of angela and merkel met paris"]


def test_figures_by_hand():
    tally = Tally(entities=10, right=9.0, right_var=0.9, missed=1.0, missed_var=0.5)
    figures = tally.figures(0.5, np.random.default_rng(0))
    assert figures["precision"]["estimate"] == pytest.approx(0.9)
    assert figures["expected_missed"] == pytest.approx(1.0 + 0.5 * 1.0)
    assert figures["recall"]["estimate"] == pytest.approx(9 / 10.5)
    assert figures["f"]["estimate"] == pytest.approx(18 / (10 + 9 + 1.5))
    for key in ("precision", "recall", "f"):
        assert figures[key]["low"] <= figures[key]["estimate"] <= figures[key]["high"]


def test_missed_starts_count_only_tokens_outside_the_predicted_entities():
    scheme = TagScheme.from_labels(["LOC", "PER"])
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, len(scheme.tags)))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    spans = [(1, 3, "PER")]
    (full,) = posteriors(scheme, [log_probs], [spans], [None], with_starts=True)
    mass, variance = missed_starts(scheme, [log_probs], [spans], [None])
    outside = full.start_probs[[0, 3, 4, 5]]
    assert mass == pytest.approx(outside.sum(axis=0))
    assert variance == pytest.approx((outside * (1 - outside)).sum(axis=0))


def run(model, path, tmp_path):
    out = tmp_path / "estimate.json"
    result = CliRunner().invoke(app, ["estimate", str(model), str(path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return result.output, json.loads(out.read_text())


def test_precision_is_the_mean_score_and_bad_lines_are_named(trained_tiny, tmp_path):
    path = tmp_path / "texts.jsonl"
    lines = [json.dumps({"text": TEXTS[0]}), "not json", json.dumps({"id": 3}), "",
             json.dumps({"text": TEXTS[1]})]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    output, report = run(trained_tiny, path, tmp_path)
    assert report["unreadable_lines"] == 2
    assert f"{path}:2: not valid JSON" in output and f"{path}:3: 'text' is missing" in output
    scores: dict[str, list[float]] = {}
    for doc in spacy.load(trained_tiny).pipe(TEXTS):
        for ent in doc.ents:
            scores.setdefault(ent.label_, []).append(ent._.bert_ner_score)
    assert scores
    for label, got in scores.items():
        figures = report["labels"][label]
        assert figures["entities"] == len(got)
        assert figures["precision"]["estimate"] == pytest.approx(np.mean(got))
    overall = report["overall"]
    assert 0.0 < overall["recall"]["estimate"] <= 1.0 and overall["expected_missed"] >= 0.0


def test_a_spacy_files_gold_is_not_read(trained_tiny, tmp_path):
    nlp = spacy.blank("en")
    words = TEXTS[0].split()
    bare = [Doc(nlp.vocab, words=words)]
    gold = [Doc(nlp.vocab, words=words, ents=["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"])]
    DocBin(docs=bare).to_disk(tmp_path / "bare.spacy")
    DocBin(docs=gold).to_disk(tmp_path / "gold.spacy")
    _, without = run(trained_tiny, tmp_path / "bare.spacy", tmp_path)
    _, with_gold = run(trained_tiny, tmp_path / "gold.spacy", tmp_path)
    for report in (without, with_gold):
        del report["data_path"]
    assert without == with_gold


def test_a_missing_file_is_one_line(trained_tiny, tmp_path):
    result = CliRunner().invoke(app, ["estimate", str(trained_tiny), str(tmp_path / "no.jsonl")])
    assert result.exit_code == 1 and "no.jsonl: cannot read" in result.output
