"""Temperature scaling: the fit finds the NLL minimum, the calibrated copy keeps its entities
and saves its temperature, and the reliability figures are the textbook ones."""

import json

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.conll import load_gold_docs
from spacy_bert_ner.evaluation.calibration import (
    decode_on_gold,
    entity_log_loss,
    fit_entity_temperature,
    fit_temperature,
    gold_targets,
    token_nll,
)
from spacy_bert_ner.evaluation.reliability import reliability
from spacy_bert_ner.tags import NO_TARGET

from ..conftest import tiny_examples

TEXTS = ["Angela Merkel met Emmanuel Macron in Paris .", "EU officials in Brussels agreed ."]


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    path = tmp_path_factory.mktemp("gold") / "gold.spacy"
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))] * 2).to_disk(path)
    return path


def test_fit_recovers_the_temperature_that_generated_the_tags():
    """Tags drawn from softmax(z / 3) are best explained by T = 3."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(20000, 5))
    probs = np.exp(logits / 3.0)
    probs /= probs.sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(5, p=row) for row in probs])
    targets[:100] = NO_TARGET  # unknown gold is left out, not read as a tag
    fitted = fit_temperature(logits, targets)
    assert fitted == pytest.approx(3.0, rel=0.05)
    known = targets != NO_TARGET
    best = token_nll(logits[known], targets[known], fitted)
    assert best < token_nll(logits[known], targets[known], 1.0)
    assert best <= token_nll(logits[known], targets[known], fitted * 1.05)
    assert best <= token_nll(logits[known], targets[known], fitted / 1.05)


def test_entity_log_loss_by_hand():
    probs, correct = np.array([0.9, 0.2, 1.0]), np.array([True, False, False])
    expected = -(np.log(0.9) + np.log(0.8) + np.log(1e-12)) / 3  # a sure wrong entity: clipped
    assert entity_log_loss(probs, correct) == pytest.approx(expected)


def test_entity_fit_finds_the_minimum_of_the_entities_log_loss(trained_tiny):
    """On text it half knows (its training sentences, right; shuffled words marked without
    entities, so what it finds there is wrong), the fitted T beats T = 1 and its neighbours
    on the log loss of the decoded entities being right."""
    nlp = spacy.load(trained_tiny)
    pipe = nlp.get_pipe("bert_ner")
    words = ["angela", "berlin", "met", "the", "paris", "of", "macron", "and", "merkel"]
    shuffled = [
        Doc(nlp.vocab, words=words[i:] + words[:i], ents=["O"] * len(words)) for i in range(2)
    ]  # with the training sentences: 8 entities right, 10 wrong, all scored about 0.9
    known = [eg.reference for eg in tiny_examples(nlp)]
    decoded = decode_on_gold(nlp, "bert_ner", pipe, known + shuffled)
    assert decoded.correct.any() and not decoded.correct.all()
    fitted = fit_entity_temperature(pipe, decoded)

    def loss(t: float) -> float:
        return entity_log_loss(decoded.span_probs(pipe, t), decoded.correct)

    assert 0.06 < fitted < 19.0  # inside the search range, not at an edge
    assert loss(fitted) < loss(1.0)
    assert loss(fitted) <= loss(fitted * 1.05) and loss(fitted) <= loss(fitted / 1.05)


@pytest.mark.parametrize("objective", ["entities", "tags"])
def test_calibrated_copy_keeps_entities_and_saves_its_temperature(
    trained_tiny, gold, tmp_path, objective
):
    out = tmp_path / "calibrated"
    result = CliRunner().invoke(
        app, ["calibrate", str(trained_tiny), str(gold), str(out), "--objective", objective]
    )
    assert result.exit_code == 0, result.output
    before, after = spacy.load(trained_tiny), spacy.load(out)
    temperature = after.get_pipe("bert_ner").cfg["temperature"]
    assert temperature != 1.0 and before.get_pipe("bert_ner").cfg["temperature"] == 1.0
    saved = json.loads((out / "bert_ner" / "cfg").read_text())["temperature"]
    assert saved == pytest.approx(temperature, rel=1e-9)
    for old, new in zip(before.pipe(TEXTS), after.pipe(TEXTS), strict=True):
        assert [(e.start, e.end, e.label_) for e in old.ents] == [
            (e.start, e.end, e.label_) for e in new.ents
        ]
        moved = [
            a._.bert_ner_score != b._.bert_ner_score
            for a, b in zip(old.ents, new.ents, strict=True)
        ]
        assert not old.ents or any(moved)


def test_an_unknown_objective_is_one_line(trained_tiny, gold, tmp_path):
    result = CliRunner().invoke(
        app, ["calibrate", str(trained_tiny), str(gold), str(tmp_path), "--objective", "both"]
    )
    assert result.exit_code != 0
    assert "--objective: 'both' is not one of entities, tags" in result.output


def test_reliability_figures_by_hand():
    scores = np.array([0.95, 0.95, 0.15, 0.55])
    correct = np.array([True, False, False, True])
    r = reliability(scores, correct, n_gold=4)
    # bins: 0.9-1.0 holds 2 (mean 0.95, accuracy 0.5), 0.1-0.2 one (0.15, 0), 0.5-0.6 one (0.55, 1)
    assert r["ece"] == pytest.approx(0.5 * 0.45 + 0.25 * 0.15 + 0.25 * 0.45)
    assert r["brier"] == pytest.approx((0.05**2 + 0.95**2 + 0.15**2 + 0.45**2) / 4)
    kept = {row["threshold"]: row for row in r["kept"]}
    assert (kept[0.5]["precision"], kept[0.5]["recall"]) == (pytest.approx(2 / 3), 0.5)
    assert kept[0.95]["entities"] == 2


@pytest.mark.parametrize("method, scores", [(None, 2), ("temperature", 3), ("features", 4)])
def test_reliability_command_writes_json_and_diagram(trained_tiny, gold, tmp_path, method, scores):
    """Each pipeline gets the scores it has: the mean tag probability and the span probability
    at T = 1, then at its temperature, then the feature calibrator's."""
    model = trained_tiny
    if method is not None:
        model = tmp_path / "calibrated"
        CliRunner().invoke(
            app, ["calibrate", str(trained_tiny), str(gold), str(model), "--method", method]
        )
    result = CliRunner().invoke(
        app,
        ["reliability", str(model), str(gold),
         "--output", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["scores"]) == scores and report["gold_entities"] == 16
    assert ("feature calibrator" in report["scores"]) == (method == "features")
    assert all(0.0 <= r["ece"] <= 1.0 for r in report["scores"].values())
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_gold_targets_read_unmarked_tokens_of_converted_conll_as_outside(trained_tiny, tmp_path):
    """A converted CoNLL doc leaves the tokens outside its entities unmarked: they are O, not
    unknown, or the fit would see entity tokens alone."""
    path = tmp_path / "gold.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nAngela NNP B-NP I-PER\nMerkel NNP I-NP I-PER\n"
                    "met VBD B-VP O\nhim PRP B-NP O\n. . O O\n")  # fmt: skip
    nlp = spacy.load(trained_tiny)
    pipe = nlp.get_pipe("bert_ner")
    (targets,) = gold_targets(pipe, load_gold_docs(path, nlp.vocab))
    tags = pipe.tag_scheme.tags
    assert [tags[t] for t in targets] == ["B-PER", "I-PER", "O", "O", "O"]
