"""The annotation loop through a real Label Studio: `select` writes tasks, Label Studio (on a
loopback port, SQLite in a temporary directory) takes them with their predictions through
label-studio-sdk, an annotator's answers go in through its API, its JSON export comes back
through `import-annotations`, and one `continual` step trains on the result.

Label Studio runs in a venv of its own (the `label_studio` fixture of this folder's conftest).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.training import Example
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.conll import load_gold_docs
from spacy_bert_ner.experiments.continual import ContinualSettings, continue_training

from .conftest import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CLIENT = Path(__file__).with_name("label_studio_client.py")
#: The documents and what the annotator marks in each (None: the annotator skips it), in the
#: labels of the tiny pipeline's labelling config (LOC, PER).
GOLD = {
    "Angela Merkel met Emmanuel Macron in Paris .": [("Angela Merkel", "PER"),
                                                      ("Emmanuel Macron", "PER"), ("Paris", "LOC")],
    "Officials in Brussels agreed with Germany .": [("Brussels", "LOC"), ("Germany", "LOC")],
    "nothing much happened here today": [],
    "Berlin welcomed the visitors from Madrid": None,
    "The company hired Maria Lopez in Lisbon": [("Maria Lopez", "PER"), ("Lisbon", "LOC")],
    "the the the": [],
}  # fmt: skip
#: A careless highlight: "Rom" of "Rome", which must cost the task, not the entity.
MISALIGNED = "Peace talks in Rome stalled"


def answer(text: str) -> dict:
    if text == MISALIGNED:
        return {"cancel": False, "spans": [[15, 18, "LOC"]]}
    spans = GOLD[text]
    if spans is None:
        return {"cancel": True, "spans": []}
    return {"cancel": False, "spans": [[text.index(word), text.index(word) + len(word), label]
                                       for word, label in spans]}  # fmt: skip


def test_select_annotate_in_label_studio_import_and_continue(label_studio, trained_tiny, tmp_path):
    url, python = label_studio
    texts = [*GOLD, MISALIGNED]
    records = tmp_path / "texts.jsonl"
    records.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    )
    tasks = tmp_path / "tasks.json"
    result = CliRunner().invoke(app, ["select", str(trained_tiny), str(records), str(tasks),
                                      "-n", str(len(texts))])  # fmt: skip
    assert result.exit_code == 0, result.output
    (tmp_path / "answers.json").write_text(json.dumps({t: answer(t) for t in texts}))
    export = tmp_path / "export.json"
    client = subprocess.run(
        [str(python), str(CLIENT), url, TOKEN, str(tasks), str(tasks.with_suffix(".xml")),
         str(tmp_path / "answers.json"), str(export)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert client.returncode == 0, client.stderr[-3000:]
    summary = json.loads(client.stdout.strip().splitlines()[-1])
    assert summary["tasks"] == len(texts)
    assert summary["predictions"] == len(texts)  # each task arrived with its pre-annotations

    corpus = tmp_path / "corrected.spacy"
    result = CliRunner().invoke(app, ["import-annotations", str(export), str(corpus)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "cancelled" in output and "'Rom'" in output and "2 tasks left out" in output
    nlp = spacy.load(trained_tiny)
    docs = load_gold_docs(corpus, nlp.vocab)
    expected = {t: spans for t, spans in GOLD.items() if spans is not None}
    assert {doc.text: [(e.text, e.label_) for e in doc.ents] for doc in docs} == expected

    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    # Two passes in small batches, with the pipeline's own recipe at a peak rate of 1e-3.
    settings = ContinualSettings(new_type="PER", epochs=2, words_per_batch=16, learn_rate=1e-3)
    before = nlp.get_pipe("bert_ner").predict([nlp.make_doc(texts[0])])[0].copy()
    seconds, steps, losses = continue_training(nlp, examples, examples, settings)
    after = nlp.get_pipe("bert_ner").predict([nlp.make_doc(texts[0])])[0]
    assert steps >= 1 and losses["bert_ner"] > 0 and (before != after).any()
    print(f"round trip continual step: {steps} updates in {seconds:.1f} s", file=sys.stderr)
