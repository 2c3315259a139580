"""`adapt`: a whole run on the tiny pipeline from a CoNLL file in the SEC filings' layout, the
label plan and dev split, and every refusal as one line with nothing written."""

import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.labelling.adapt_data import (
    plan_labels,
    relabelled,
    sample_runs,
    split_dev,
)

from ..conftest import OLD_ROWS, examples_of

# `word POS - NER`, IOB1, -DOCSTART- lines: the SEC filings' layout. "per" is the pipeline's
# PER in another case; MISC is a type the tiny pipeline has never predicted.
SENTENCES = [
    "angela NNP - I-per\nmerkel NNP - I-per\nmet VBD - O\nthe DT - O\ngerman JJ - I-MISC\n",
    "paris NNP - I-LOC\nand CC - O\nberlin NNP - I-LOC\nmet VBD - O\nfrench JJ - I-MISC\n",
    "the DT - O\nmerkel NNP - I-per\nof IN - O\nparis NNP - I-LOC\n",
]


def write_conll(path: Path, repeat: int = 4) -> Path:
    body = "\n".join(SENTENCES * repeat)
    path.write_text(f"-DOCSTART- -X- - O\n\n{body}\n-DOCSTART- -X- - O\n\n{body}", "utf8")
    return path


@pytest.fixture
def old_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "old.spacy"
    DocBin(docs=[eg.reference for eg in examples_of(spacy.blank("en"), OLD_ROWS)]).to_disk(path)
    return path


def test_a_whole_run_adds_the_new_type_and_writes_a_calibrated_pipeline(
    trained_tiny: Path, old_corpus: Path, tmp_path: Path
) -> None:
    train, output = write_conll(tmp_path / "FIN.txt"), tmp_path / "out" / "adapted"
    args = ["adapt", str(trained_tiny), str(train), str(output), "--rehearse", str(old_corpus),
            "--retention", str(old_corpus), "--max-steps", "4",
            "--eval-frequency", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    pipe = spacy.load(output).get_pipe("bert_ner")
    assert pipe.labels == ("LOC", "MISC", "PER")
    assert pipe.cfg["temperature"] != 1.0  # calibrated on the dev split
    # The calibrator knows what the adapted model saw: the rehearsal corpus and the train split.
    old_ents = [
        ent for doc in DocBin().from_disk(old_corpus).get_docs(pipe.vocab) for ent in doc.ents
    ]
    assert old_ents and all(pipe.mentions.seen(ent) for ent in old_ents)
    assert len(pipe.mentions) > len({(ent.text, ent.label_) for ent in old_ents})
    summary = json.loads((output / "adapt.json").read_text())
    assert summary["new_labels"] == ["MISC"]
    assert summary["label_mapping"] == {"LOC": "LOC", "MISC": "MISC", "per": "PER"}
    assert summary["n_train_docs"] >= summary["n_dev_docs"] > 0
    assert summary["dev"] == "20% of TRAIN" and "ents_f" in summary["dev_scores"]
    assert summary["settings"]["max_steps"] == 4 and summary["train_seconds"] > 0
    # Checkpoints were ranked with the old domain's text (--retention) scored apart.
    retention = summary["retention"]
    assert retention["words"] > 0 and retention["max_forgetting"] == 1.0
    assert summary["dev_scores"]["retention_f"] == retention["best_f"]
    assert "guarded_ents_f" in summary["dev_scores"]
    # ... and the threshold was chosen among those that keep it too.
    assert 0.0 <= summary["threshold"]["old_domain_floor"] <= 1.0
    # The threshold best on the dev split is in the saved config, so a load applies it.
    assert 0.0 <= summary["threshold"]["threshold"] == pipe.cfg["threshold"] <= 1.0
    assert summary["threshold"]["dev_f1"] >= summary["threshold"]["dev_f1_at_0"]
    config = spacy.load(output).config
    assert config["training"]["before_update"]["@callbacks"] == "spacy_bert_ner.rehearse.v1"
    assert sorted(p.name for p in output.parent.iterdir()) == ["adapted"]  # no temporary left
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and f"OUTPUT {output}: already exists" in again.output


def _empty_file(path: Path) -> Path:
    path.write_text("\n", "utf8")
    return path


def _empty_text_corpus(path: Path) -> Path:
    DocBin(docs=[Doc(spacy.blank("en").vocab, words=[])]).to_disk(path)
    return path


def _no_entities(path: Path) -> Path:
    path.write_text("the DT - O\nmet VBD - O\n", "utf8")
    return path


def _bad_label_export(path: Path) -> Path:
    value = {"start": 0, "end": 6, "text": "Angela", "labels": ["my label"]}
    region = {"type": "labels", "from_name": "label", "to_name": "text", "value": value}
    task = {"id": 1, "data": {"text": "Angela met"}, "annotations": [{"result": [region]}]}
    path.write_text(json.dumps([task]), "utf8")
    return path


REFUSALS = {
    "empty file": (lambda p: _empty_file(p.with_suffix(".txt")), [],
                   "TRAIN {train}: the file is empty"),
    "no text": (lambda p: _empty_text_corpus(p.with_suffix(".spacy")), [],
                "TRAIN {train}: holds no text"),
    "no entities": (lambda p: _no_entities(p.with_suffix(".txt")), [],
                    "TRAIN {train}: holds no entities to learn from"),
    "unmappable label": (write_conll, ["--no-new-labels"],
                         "TRAIN {train}: labels MISC (16) map to none of the pipeline's"),
    "label that is no type": (lambda p: _bad_label_export(p.with_suffix(".json")), [],
                              "TRAIN {train}: labels 'my label' cannot be entity types"),
    "missing dev": (write_conll, ["--dev", "{tmp}/nope.txt"], "--dev {tmp}/nope.txt: not found"),
    "bad label map": (write_conll, ["--label-map", "per"], "--label-map: give FROM=TO pairs"),
    "missing retention text": (write_conll, ["--retention", "{tmp}/nope.spacy"],
                               "--retention {tmp}/nope.spacy: not found"),
    "negative forgetting": (write_conll, ["--max-forgetting", "-1"],
                            "--max-forgetting and --retention-words must not be negative"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_are_one_line_and_write_nothing(
    trained_tiny: Path, old_corpus: Path, tmp_path: Path, case: str
) -> None:
    make, options, expected = REFUSALS[case]
    inputs = tmp_path / "in"
    inputs.mkdir()
    train = make(inputs / "train")
    options = [option.format(tmp=inputs) for option in options]
    output = tmp_path / "out" / "adapted"
    args = ["adapt", str(trained_tiny), str(train), str(output), "--rehearse", str(old_corpus)]
    result = CliRunner().invoke(app, [*args, *options])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected.format(train=train, tmp=inputs) in lines[0], lines
    assert not output.parent.exists()


def test_old_domain_text_is_sampled_in_seeded_whole_runs() -> None:
    nlp = spacy.blank("en")
    docs = [
        Doc(nlp.vocab, words=[f"w{i}"] * 10, sent_starts=[True] + [False] * 9) for i in range(20)
    ]
    drawn = sample_runs(docs, words=25, seed=0)
    assert [len(doc) for doc in drawn] == [10, 10, 10]  # whole runs until 25 words
    assert [doc.text for doc in drawn] == [doc.text for doc in sample_runs(docs, 25, seed=0)]
    assert len(sample_runs(docs, words=1000, seed=0)) == 20  # all there is


def test_labels_map_by_option_then_by_name_then_by_case() -> None:
    nlp = spacy.blank("en")
    words = ["Ann", "at", "Acme", "in", "Rome"]
    doc = Doc(nlp.vocab, words=words, ents=["B-PERSON", "O", "B-org", "O", "B-GPE"])
    plan = plan_labels([doc], ["LOC", "ORG", "PER"], Path("t"), {"PERSON": "PER"})
    assert plan.mapping == {"GPE": "GPE", "PERSON": "PER", "org": "ORG"}
    assert plan.new == ("GPE",)
    assert [e.label_ for e in relabelled([doc], plan.mapping)[0].ents] == ["PER", "ORG", "GPE"]
    with pytest.raises(BertNERError, match=r"labels GPE \(1\) map to none"):
        plan_labels([doc], ["LOC", "ORG", "PER"], Path("t"), {"PERSON": "PER"}, allow_new=False)


def test_dev_split_is_seeded_whole_runs_of_sentences() -> None:
    nlp = spacy.blank("en")
    words = [w for i in range(50) for w in (f"w{i}", "x", ".")]
    doc = Doc(nlp.vocab, words=words, sent_starts=[i % 3 == 0 for i in range(len(words))])
    train, dev = split_dev([doc], 0.2, seed=0, path=Path("t"), max_words=6)
    assert (len(train), len(dev)) == (20, 5) and all(len(run) == 6 for run in train + dev)
    again = split_dev([doc], 0.2, seed=0, path=Path("t"), max_words=6)[1]
    assert [run.text for run in again] == [run.text for run in dev]
    other = split_dev([doc], 0.2, seed=1, path=Path("t"), max_words=6)[1]
    assert [run.text for run in other] != [run.text for run in dev]
    with pytest.raises(BertNERError, match="too small to cut a dev split"):
        split_dev([doc[:3].as_doc()], 0.2, seed=0, path=Path("t"))


def test_calibration_falls_back_to_the_tags_when_no_entity_is_decoded(monkeypatch, tmp_path):
    from spacy_bert_ner.evaluation.calibration import Objective
    from spacy_bert_ner.labelling import adapt

    calls = []

    def calibrate_pipeline(
        model, dev, output, gpu_id, objective=Objective.entities, *, train_paths
    ):
        calls.append(objective)
        assert train_paths == [tmp_path / "train.spacy"]
        if objective is Objective.entities:
            raise BertNERError("no entities decoded on the dev data to fit a temperature on")
        return {"bert_ner": {"objective": objective.value}}

    monkeypatch.setattr(adapt, "calibrate_pipeline", calibrate_pipeline)
    trained_on = [tmp_path / "train.spacy"]
    fitted = adapt.calibrate(
        tmp_path, tmp_path / "dev.spacy", tmp_path, trained_on, adapt.AdaptSettings()
    )
    assert calls == [Objective.entities, Objective.tags]
    assert fitted == {"bert_ner": {"objective": "tags"}}
