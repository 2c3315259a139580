"""The feature calibrator: its features by hand, a fit that keeps the score monotone in the
span probability and learns that unseen entities are right less often, its saved form, and
the thresholds the component applies."""

import numpy as np
import pytest
from spacy.tokens import Doc, Span

from spacy_bert_ner.errors import BertNERError, ModelLoadError
from spacy_bert_ner.pipeline.calibrator import (
    BASE_FEATURES,
    FeatureCalibrator,
    check_threshold,
    entity_features,
    fit_calibrator,
    threshold_filter,
)
from spacy_bert_ner.pipeline.mentions import TrainingMentions

LABELS = ("LOC", "ORG", "PER")


def column(rows: np.ndarray, name: str) -> np.ndarray:
    return rows[:, BASE_FEATURES.index(name)]


def test_features_by_hand(vocab):
    words = ["The", "Servicer", "met", "Angela", "Merkel", ";", "the", "servicer", "left",
             "Paris", "for", "PARIS", "and", "Paris", "."]  # fmt: skip
    doc = Doc(vocab, words=words)
    entities = [(Span(doc, 1, 2, "ORG"), 0.9), (Span(doc, 3, 5, "PER"), 0.99),
                (Span(doc, 9, 10, "LOC"), 0.5), (Span(doc, 11, 12, "LOC"), 0.6),
                (Span(doc, 13, 14, "ORG"), 0.7)]  # fmt: skip
    outside = np.ones(len(doc))
    outside[2] = 0.25  # the token after "Servicer" may belong to an entity
    mentions = TrainingMentions.from_docs([Doc(vocab, words=["Angela", "Merkel"],
                                               ents=["B-PER", "I-PER"])])  # fmt: skip
    rows = entity_features(doc, entities, outside, mentions, LABELS)
    assert rows.shape == (5, len(BASE_FEATURES) + len(LABELS))
    assert column(rows, "logit") == pytest.approx(np.log([9, 99, 1, 1.5, 7 / 3]))
    assert column(rows, "unseen").tolist() == [1, 0, 1, 1, 1]
    assert column(rows, "logit_unseen")[1] == 0 and column(rows, "logit_unseen")[0] > 0
    assert column(rows, "one_token").tolist() == [1, 0, 1, 1, 1]
    assert column(rows, "all_caps").tolist() == [0, 0, 0, 1, 0]
    assert column(rows, "boundary_doubt") == pytest.approx([0.75, 0.75, 0, 0, 0])
    # "Paris" is LOC once and ORG once: labelled otherwise; "PARIS" is another string.
    assert column(rows, "labelled_otherwise").tolist() == [0, 0, 1, 0, 1]
    assert column(rows, "lower_elsewhere").tolist() == [1, 0, 0, 0, 0]  # "the servicer"
    assert column(rows, "lowercase_words").tolist() == [1, 0, 0, 0, 0]
    assert column(rows, "doc_unseen") == pytest.approx([0.8] * 5)
    assert rows[:, len(BASE_FEATURES) :].tolist()[1] == [0, 0, 1]  # PER
    assert entity_features(doc, [], outside, mentions, LABELS).shape == (0, 18)


def synthetic(rng, n=6000):
    """Entities of two kinds: seen ones right as often as their probability says, unseen
    ones right half as often."""
    probs = rng.uniform(0.3, 0.999, n)
    unseen = rng.random(n) < 0.5
    correct = rng.random(n) < np.where(unseen, probs / 2, probs)
    rows = np.zeros((n, len(BASE_FEATURES) + 1))
    logit = np.log(probs / (1 - probs))
    rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] = 1, logit, unseen, logit * unseen
    rows[:, -1] = 1  # one label
    return rows, correct, unseen


def test_fit_learns_that_unseen_entities_are_right_less_often():
    rng = np.random.default_rng(0)
    rows, correct, unseen = synthetic(rng)
    calibrator = fit_calibrator(rows, correct, ["PER"], use_unseen=True)
    scores = calibrator.scores(rows)
    for kind in (unseen, ~unseen):  # each kind's mean score is its accuracy
        assert scores[kind].mean() == pytest.approx(correct[kind].mean(), abs=0.01)
    blind = fit_calibrator(rows, correct, ["PER"], use_unseen=False)
    assert blind.weights[BASE_FEATURES.index("unseen")] == 0.0
    assert abs(blind.scores(rows)[unseen].mean() - correct[unseen].mean()) > 0.1


def test_the_score_stays_monotone_in_the_span_probability():
    """Data where a higher span probability is right less often: the fit pins the slope at
    0 instead of turning the score around."""
    rng = np.random.default_rng(1)
    rows, correct, _ = synthetic(rng)
    correct = rng.random(len(rows)) < 1 - 1 / (1 + np.exp(-rows[:, 1]))
    calibrator = fit_calibrator(rows, correct, ["PER"], use_unseen=True)
    slope = calibrator.weights[BASE_FEATURES.index("logit")]
    assert slope >= 0 and slope + calibrator.weights[BASE_FEATURES.index("logit_unseen")] >= 0
    order = np.argsort(rows[:, 1])
    for kind in (rows[order, 2] == 1, rows[order, 2] == 0):
        assert np.all(np.diff(calibrator.scores(rows[order][kind])) >= -1e-12)


def test_saved_form_round_trips_and_a_damaged_one_is_one_line():
    calibrator = FeatureCalibrator(LABELS, np.arange(len(BASE_FEATURES) + 3, dtype=float))
    again = FeatureCalibrator.from_cfg(calibrator.to_cfg(), "here")
    assert again.labels == LABELS and again.weights.tolist() == calibrator.weights.tolist()
    for bad in ({}, {"version": 2, "weights": {}}, {"version": 1, "weights": {"bias": "x"}}):
        with pytest.raises(ModelLoadError, match="^here: the feature calibrator's weights"):
            FeatureCalibrator.from_cfg(bad, "here")


def test_threshold_filters(vocab):
    doc = Doc(vocab, words=["Paris", "Angela", "IBM"])
    loc, per, org = Span(doc, 0, 1, "LOC"), Span(doc, 1, 2, "PER"), Span(doc, 2, 3, "ORG")
    keep = threshold_filter({"threshold": 0.5}, "ner")
    assert keep(loc, 0.5) and not keep(loc, 0.49)
    cfg = {"threshold": "guaranteed", "guaranteed_thresholds": {"LOC": 0.9, "PER": None}}
    keep = threshold_filter(cfg, "ner")
    assert keep(loc, 0.9) and not keep(loc, 0.89)
    assert not keep(per, 1.0) and not keep(org, 1.0)  # no threshold met the target: none kept
    with pytest.raises(BertNERError, match="^ner: threshold = 'guaranteed' needs"):
        threshold_filter({"threshold": "guaranteed", "guaranteed_thresholds": None}, "ner")


def test_a_threshold_is_a_score_or_guaranteed():
    assert check_threshold(0.5) == 0.5 and check_threshold("guaranteed") == "guaranteed"
    with pytest.raises(BertNERError, match="threshold: 'best' is neither a number nor"):
        check_threshold("best")
    with pytest.raises(BertNERError, match="threshold must lie between 0 and 1"):
        check_threshold(1.5)
