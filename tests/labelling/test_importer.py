"""`import-annotations`: every task becomes a document or is named; none is lost silently."""

import json

import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.labelling.importer import import_annotations

TEXT = "Angela Merkel visited Paris ."


def region(start, end, label):
    value = {"start": start, "end": end, "text": TEXT[start:end], "labels": [label]}
    return {"type": "labels", "from_name": "label", "to_name": "text", "value": value}


def task(task_id, results, cancelled=False):
    return {"id": task_id, "data": {"text": TEXT},
            "annotations": [{"was_cancelled": cancelled, "result": results}]}  # fmt: skip


def read(path):
    nlp = spacy.blank("en")
    return [
        [(e.text, e.label_) for e in doc.ents]
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab)
    ]


def test_label_studio_export(tmp_path):
    export = [
        task(1, [region(0, 13, "PER"), region(22, 27, "LOC")]),
        task(2, [region(0, 13, "PER"), region(22, 26, "LOC")]),  # "Pari": misaligned
        task(3, [region(0, 13, "PER")], cancelled=True),
        task(4, []),  # the annotator marked nothing: kept, with no entity
        task(7, [region(0, 13, "PER"), "not a region"]),
        {"id": 8, "data": "not an object"},
        {"id": 5, "data": {"text": TEXT}, "annotations": []},
        {"id": 6, "data": {"text": TEXT},
         "annotations": [{"was_cancelled": True, "result": []},
                         {"was_cancelled": False, "result": [region(22, 27, "LOC")]}]},
    ]  # fmt: skip
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    written, left_out = import_annotations(path, tmp_path / "out.spacy")
    assert written == 3
    assert read(tmp_path / "out.spacy") == [
        [("Angela Merkel", "PER"), ("Paris", "LOC")],
        [],
        [("Paris", "LOC")],
    ]
    assert len(left_out) == 5
    assert "task 2" in left_out[0] and "'Pari'" in left_out[0] and "token" in left_out[0]
    assert "task 3" in left_out[1] and "cancelled" in left_out[1]
    assert "task 7" in left_out[2] and "not one NER label" in left_out[2]
    assert "task 8" in left_out[3] and "data.text" in left_out[3]
    assert "task 5" in left_out[4] and "not annotated" in left_out[4]
    doc = next(DocBin().from_disk(tmp_path / "out.spacy").get_docs(spacy.blank("en").vocab))
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)  # no token left unknown


def test_prodigy_jsonl_names_bad_lines(tmp_path):
    lines = [
        json.dumps({"text": TEXT, "spans": [{"start": 0, "end": 13, "label": "PER"}],
                    "answer": "accept"}),
        "{not json",
        json.dumps({"text": TEXT, "spans": [], "answer": "reject"}),
        json.dumps({"text": TEXT, "spans": [{"start": 0, "end": 13, "label": "PER"},
                                            {"start": 7, "end": 13, "label": "ORG"}]}),
        json.dumps({"text": TEXT, "spans": [{"start": 22, "end": 99, "label": "LOC"}]}),
    ]  # fmt: skip
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["import-annotations", str(path), str(tmp_path / "o.spacy")])
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "o.spacy") == [[("Angela Merkel", "PER")]]
    for line, reason in [(2, "not valid JSON"), (3, "'reject'"), (4, "overlapping"), (5, "bounds")]:
        assert f"line {line}: " in result.output and reason in result.output
    assert "4 tasks left out" in " ".join(result.output.split())


def test_an_export_that_is_not_json_is_one_line(tmp_path):
    path = tmp_path / "export.json"
    path.write_text("{oops")
    result = CliRunner().invoke(app, ["import-annotations", str(path), str(tmp_path / "o.spacy")])
    assert result.exit_code == 1 and "not a Label Studio JSON export" in result.output
