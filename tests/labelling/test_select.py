"""`select`: the documents with the most expected errors first, written as tasks whose
pre-annotations are the pipeline's own entities."""

import json

import numpy as np
import pytest
import spacy
from spacy.tokens import Span
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.labelling.select import expected_errors
from spacy_bert_ner.pipeline.spans import DecodedDoc

TEXTS = [
    "Angela Merkel met Emmanuel Macron in Paris .",
    "the the the",
    "EU officials in Brussels agreed with Germany .",
    "Berlin",
    "nothing much here today",
]


@pytest.fixture
def records(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"doc{i}", "text": t}) for i, t in enumerate(TEXTS)]
    path.write_text("\n".join([*lines, "not json"]) + "\n")
    return path


def test_expected_errors_counts_doubtful_entities_and_missed_mass():
    doc = spacy.blank("en")("a b c d")
    decoded = DecodedDoc(
        [(Span(doc, 0, 2, label="PER"), 0.75)], outside_probs=np.array([0.1, 0.2, 0.9, 0.6])
    )
    # (1 - 0.75) for the entity, plus (1 - 0.9) + (1 - 0.6) for the tokens outside it
    assert expected_errors(decoded) == pytest.approx(0.25 + 0.1 + 0.4)


def test_uncertainty_writes_label_studio_tasks_most_doubtful_first(trained_tiny, records, tmp_path):
    out = tmp_path / "tasks.json"
    result = CliRunner().invoke(
        app, ["select", str(trained_tiny), str(records), str(out), "-n", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "not valid JSON" in result.output  # the unreadable line is named
    tasks = json.loads(out.read_text())
    assert len(tasks) == 3
    doubts = [task["data"]["expected_errors"] for task in tasks]
    assert doubts == sorted(doubts, reverse=True)
    nlp = spacy.load(trained_tiny)
    for task in tasks:
        text = task["data"]["text"]
        regions = task["predictions"][0]["result"]
        expected = [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents]
        got = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in regions]
        assert got == expected
        assert all(
            text[r["value"]["start"] : r["value"]["end"]] == r["value"]["text"] for r in regions
        )
        assert all(0.0 <= r["score"] <= 1.0 for r in regions)
    config = out.with_suffix(".xml").read_text()
    assert all(f'<Label value="{label}"/>' in config for label in nlp.get_pipe("bert_ner").labels)
    # the rest of the input is less doubtful than the last one chosen
    everything = tmp_path / "all.json"
    CliRunner().invoke(app, ["select", str(trained_tiny), str(records), str(everything)])
    ranked = [t["data"]["expected_errors"] for t in json.loads(everything.read_text())]
    assert len(ranked) == len(TEXTS) and ranked[:3] == doubts


def test_random_writes_prodigy_lines_with_scores(trained_tiny, records, tmp_path):
    out = tmp_path / "tasks.jsonl"
    args = ["select", str(trained_tiny), str(records), str(out), "-n", "2", "--strategy", "random",
            "--format", "prodigy"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and {line["text"] for line in lines} <= set(TEXTS)
    for line in lines:
        assert set(line) == {"text", "spans", "meta"}
        assert len(line["meta"]["scores"]) == len(line["spans"])
        assert all({"start", "end", "label"} <= set(span) for span in line["spans"])
    again = tmp_path / "again.jsonl"
    CliRunner().invoke(app, [*args[:3], str(again), *args[4:]])
    assert again.read_text() == out.read_text()  # seeded
