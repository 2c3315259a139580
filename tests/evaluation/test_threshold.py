"""The threshold curve from one pass gives `spacy find-threshold`'s figures."""

import json

import pytest
import spacy
from spacy.cli.find_threshold import find_threshold
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.evaluation.threshold import threshold_curve

from ..conftest import tiny_examples


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    path = tmp_path_factory.mktemp("gold") / "gold.spacy"
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))] * 2).to_disk(path)
    return path


def test_one_pass_curve_matches_find_threshold(trained_tiny, gold):
    curve = threshold_curve(str(trained_tiny), gold, n_thresholds=11)
    _, _, spacy_f1 = find_threshold(str(trained_tiny), gold, "bert_ner", "threshold", "ents_f",
                                    n_trials=11)  # fmt: skip
    assert [row["f1"] for row in curve["curve"]] == pytest.approx(list(spacy_f1.values()))
    assert curve["best"]["f1"] == max(row["f1"] for row in curve["curve"])
    assert curve["gold_entities"] == 16


def test_command_writes_json_and_plot(trained_tiny, gold, tmp_path):
    result = CliRunner().invoke(
        app,
        ["threshold-curve", str(trained_tiny), str(gold), "-n", "5",
         "--output", str(tmp_path / "t.json"), "--plot", str(tmp_path / "t.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Best threshold" in result.output
    assert len(json.loads((tmp_path / "t.json").read_text())["curve"]) == 5
    assert (tmp_path / "t.png").stat().st_size > 0
