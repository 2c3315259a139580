"""`monitor`: the drift score along `annotate`'s output against the pipeline's dev
reference, the first document past the alarm, bad lines named and counted, and the PSI by
hand."""

import json

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.evaluation.drift import QualityMonitor, psi, score_shares

from ..conftest import tiny_examples


def test_psi_and_shares_by_hand():
    assert score_shares([0.05, 0.95, 0.99, 1.0]) == [0.25] + [0.0] * 8 + [0.75]
    shares, reference = [0.5, 0.5] + [0.0] * 8, [0.25, 0.75] + [0.0] * 8
    expected = 0.25 * np.log(2) + (-0.25) * np.log(0.5 / 0.75)
    assert psi(shares, reference) == pytest.approx(expected)
    assert psi(reference, reference) == 0.0


def test_monitor_window_and_minimum():
    monitor = QualityMonitor({"overall": [0.0] * 9 + [1.0]}, window=4, min_entities=3)
    monitor.observe("PER", 0.95, True)
    assert monitor.figures()["psi"] is None  # too few entities
    for score in (0.95, 0.15, 0.15, 0.15):
        monitor.observe("PER", score, False)
    figures = monitor.figures()
    assert figures["entities"] == 4 and figures["estimated_precision"] == pytest.approx(0.35)
    assert figures["unseen_share"] == 1.0 and figures["alarm"]  # the first 0.95 left the window
    assert monitor.figures("LOC")["entities"] == 0 and monitor.keys() == ["overall", "PER"]


@pytest.fixture(scope="module")
def calibrated(trained_tiny, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))] * 2).to_disk(
        tmp / "dev.spacy"
    )
    result = CliRunner().invoke(
        app, ["calibrate", str(trained_tiny), str(tmp / "dev.spacy"), str(tmp / "calibrated")]
    )
    assert result.exit_code == 0, result.output
    return tmp / "calibrated"


def line(score, label="PER", text="angela"):
    entity = {"start_char": 0, "end_char": len(text), "label": label, "text": text, "score": score}
    return json.dumps({"id": 1, "entities": [entity]})


def test_monitor_command_finds_the_switch(calibrated, tmp_path):
    reference = spacy.load(calibrated).get_pipe("bert_ner").cfg["calibrator"]["reference"]
    top = max(range(10), key=lambda b: reference["overall"][b])  # where dev's scores lie
    like_dev, shifted = (top + 0.5) / 10, 0.05 if top > 0 else 0.95
    lines = [line(like_dev)] * 300 + ["not json", '{"id": 2}'] + [line(shifted)] * 300
    path = tmp_path / "annotated.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out, plot = tmp_path / "monitor.json", tmp_path / "drift.png"
    result = CliRunner().invoke(app, ["monitor", str(calibrated), str(path), "--output", str(out),
                                      "--plot", str(plot), "--window", "100"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["documents"] == 600 and report["unreadable_lines"] == 2
    assert f"{path}:301: not an annotate output line" in result.output
    assert 300 < report["first_alarm_document"] <= 400
    assert report["figures"]["PER"]["unseen_share"] == 0.0  # "angela" was in training
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_pipeline_without_reference_is_one_line(trained_tiny, tmp_path):
    (tmp_path / "a.jsonl").write_text(line(0.5) + "\n")
    result = CliRunner().invoke(app, ["monitor", str(trained_tiny), str(tmp_path / "a.jsonl")])
    assert result.exit_code == 1 and "has no dev reference" in result.output
