"""The quality metrics of the service: fed the annotated docs, they export per label the
estimated precision, the unseen share and the drift score, and the drift alarm goes off within
200 documents of a switch to shifted text and not before it (the tiny model, calibrated on its
training sentences and on shuffled ones it gets wrong; shifted text is shuffled only)."""

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.evaluation.drift import ALARM_PSI
from spacy_bert_ner.serve.metrics import ServiceMetrics

from ..conftest import OLD_ROWS

WORDS = ["angela", "berlin", "met", "the", "paris", "of", "macron", "and", "merkel"]


def rotations(words, n):
    return [" ".join(words[i:] + words[:i]) for i in range(n)]


@pytest.fixture(scope="module")
def calibrated(trained_tiny, tmp_path_factory):
    """Calibrated on the training sentences (twice) and three shuffles marked without entities."""
    tmp = tmp_path_factory.mktemp("metrics")
    vocab = spacy.blank("en").vocab
    docs = [Doc(vocab, words=words, ents=tags) for words, tags in OLD_ROWS] * 2
    docs += [Doc(vocab, words=text.split(), ents=["O"] * len(WORDS))
             for text in rotations(WORDS, 3)]  # fmt: skip
    DocBin(docs=docs).to_disk(tmp / "dev.spacy")
    result = CliRunner().invoke(app, ["calibrate", str(trained_tiny), str(tmp / "dev.spacy"),
                                      str(tmp / "calibrated")])  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp / "calibrated"


def gauges(metrics, name):
    """{label: value} of one gauge in the scraped text."""
    found = {}
    for line in metrics.text().decode().splitlines():
        if line.startswith(name + "{"):
            label = line.split('label="')[1].split('"')[0]
            found[label] = float(line.rsplit(" ", 1)[1])
    return found


def test_no_reference_no_quality_metrics(trained_tiny):
    nlp = spacy.load(trained_tiny)
    metrics = ServiceMetrics(queued=lambda: 0, in_flight=lambda: 0)
    assert metrics.watch_quality(nlp, lambda doc: doc.ents) is None
    assert b"bert_ner_score_drift_psi" not in metrics.text()


def test_drift_alarm_within_200_documents_of_the_switch_and_not_before(calibrated):
    nlp = spacy.load(calibrated)
    metrics = ServiceMetrics(queued=lambda: 0, in_flight=lambda: 0)
    feed = metrics.watch_quality(nlp, lambda doc: doc.ents)
    assert feed is not None
    like_dev = list(nlp.pipe([" ".join(words) for words, _ in OLD_ROWS] * 2 + rotations(WORDS, 3)))
    shifted = list(nlp.pipe(rotations(WORDS[::-1], 9)))  # shuffles it never calibrated on
    rng = np.random.default_rng(0)
    for k in range(600):
        feed([like_dev[rng.integers(len(like_dev))]])
        alarm = gauges(metrics, "bert_ner_drift_alarm")
        assert alarm.get("overall", 0.0) == 0.0, (k, gauges(metrics, "bert_ner_score_drift_psi"))
    precision = gauges(metrics, "bert_ner_estimated_precision")
    assert set(precision) == {"overall", "LOC", "PER"}
    assert gauges(metrics, "bert_ner_unseen_entity_share")["overall"] < 0.5
    first = None
    for k in range(200):
        feed([shifted[rng.integers(len(shifted))]])
        if gauges(metrics, "bert_ner_drift_alarm")["overall"] == 1.0:
            first = k
            break
    assert first is not None
    assert gauges(metrics, "bert_ner_score_drift_psi")["overall"] > ALARM_PSI
    assert gauges(metrics, "bert_ner_estimated_precision")["overall"] < precision["overall"]
