"""`benchmarks.drift_stream` against a real `serve` of the tiny model: a pipeline calibrated
with features exports the gauges it reads, and one without them is refused in one line."""

import json

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from benchmarks.drift_stream import main, texts_of
from spacy_bert_ner.cli import app
from tests.conftest import tiny_examples


def test_texts_of_reads_jsonl_and_its_limit(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in "abc") + "\n\n")
    assert texts_of(path) == ["a", "b", "c"] and texts_of(path, 2) == ["a", "b"]


@pytest.mark.slow
def test_a_stream_through_serve(trained_tiny, tmp_path, capsys):
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))] * 2).to_disk(
        tmp_path / "dev.spacy"
    )
    model = tmp_path / "calibrated"
    result = CliRunner().invoke(app, ["calibrate", str(trained_tiny), str(tmp_path / "dev.spacy"),
                                      str(model)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "angela merkel met macron"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "paris and berlin"}) + "\n")
    main([str(model), str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    assert "alarm after" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no drift gauges"):
        main([str(trained_tiny), str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
