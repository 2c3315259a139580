"""The annotator core alone, without Ray or HTTP: batches of texts as the service's batcher
hands them over, the retry of a failed batch, the formats, the metadata of every
architecture."""

import json
from pathlib import Path

import pytest
import spacy

from spacy_bert_ner.annotate.annotator import Annotator, word_budget_groups
from spacy_bert_ner.annotate.records import ANNOTATED, make_record

TEXTS = ["angela merkel met macron in paris", "the berlin of angela", "paris and berlin met merkel"]


@pytest.fixture(scope="module")
def annotator(trained_tiny: Path) -> Annotator:
    return Annotator.load(str(trained_tiny))


def test_word_budget_groups_keep_order_and_budget():
    texts = ["a b c", "d e", "f g h i", "j", "k l m n o p"]
    groups = word_budget_groups(texts, budget=5)
    assert [i for group in groups for i in group] == list(range(len(texts)))
    assert groups == [[0, 1], [2, 3], [4]]  # a text over the budget makes a group alone


def test_docs_give_the_lines_the_record_stream_gives(annotator):
    """One text per batch on both paths, so both run the same computation."""
    records = [make_record(i, {"id": i, "text": t}, "text", "id") for i, t in enumerate(TEXTS, 1)]
    streamed = []
    for record in records:
        streamed += list(Annotator(annotator.nlp, batch_size=1).results([record]))
    batched = [annotator.docs([text], batch_words=100)[0] for text in TEXTS]
    assert [kind for kind, _ in streamed] == [ANNOTATED] * 3
    assert [line for _, line in streamed] == [
        annotator.record_line(record, doc) for record, doc in zip(records, batched, strict=True)
    ]
    assert any(json.loads(line)["entities"] for _, line in streamed)


def test_docs_are_in_order_across_word_budget_groups(annotator):
    texts = TEXTS * 5
    docs = annotator.docs(texts, batch_words=7)
    assert [doc.text for doc in docs] == texts


def test_a_failing_text_costs_only_itself(fragile_pipeline):
    """The batch holding it fails in the pipeline; its texts are retried one by one."""
    fragile = Annotator.load(str(fragile_pipeline))
    texts = ["Paris in spring", "this goes boom", "Berlin in winter"]
    docs = fragile.docs(texts, batch_words=100)
    assert [d.text for d in (docs[0], docs[2])] == [texts[0], texts[2]]
    assert isinstance(docs[1], RuntimeError) and str(docs[1]) == "boom"


def test_a_text_the_tokenizer_refuses_costs_only_itself(trained_tiny):
    short = Annotator(spacy.load(trained_tiny))
    short.nlp.max_length = 20
    docs = short.docs(["Paris", "a text far longer than twenty characters", "Berlin"], 100)
    assert [d.text for d in (docs[0], docs[2])] == ["Paris", "Berlin"]
    assert isinstance(docs[1], ValueError)


def test_displacy_format_has_the_record_entities_and_the_id_as_title(annotator):
    record = make_record(1, {"id": "a", "text": TEXTS[0]}, "text", "id")
    (doc,) = annotator.docs([TEXTS[0]], batch_words=100)
    shown = annotator.displacy(record, doc)
    entities = json.loads(annotator.record_line(record, doc))["entities"]
    assert shown["title"] == "a" and shown["text"] == TEXTS[0]
    assert shown["ents"] == [
        {"start": e["start_char"], "end": e["end_char"], "label": e["label"], "score": e["score"]}
        for e in entities
    ]


def test_metadata_of_the_standalone_model(annotator):
    metadata = annotator.metadata()
    (component,) = metadata["components"].values()
    assert sorted(component["labels"]) == ["LOC", "PER"]
    assert component["model"]["architecture"] == "bert_token_classifier"
    assert component["model"]["backend"] == "torch"
    assert component["model"]["runtime_precision"] == "fp32"
    assert metadata["versions"]["spacy_bert_ner"]


def test_metadata_of_an_onnxruntime_pipeline(trained_tiny):
    override = {"components.bert_ner.model.backend": "onnxruntime"}
    onnx = Annotator(spacy.load(trained_tiny, config=override))
    (component,) = onnx.metadata()["components"].values()
    assert component["model"]["backend"] == "onnxruntime"
    (doc,) = onnx.docs(TEXTS[:1], batch_words=100)
    assert doc.text == TEXTS[0]


def test_metadata_of_a_listener_pipeline(trained_multitask):
    """The bert_ner pipe listening to a shared transformer has no window settings of its own."""
    listener = Annotator(spacy.load(trained_multitask))
    components = listener.metadata()["components"]
    assert [c["model"] for c in components.values()] == [
        {"architecture": "listener_token_classifier"}
    ]
    assert all(c["labels"] for c in components.values())
