"""Prediction outside `nlp.pipe`: the pipes before bert_ner run first (a listener reads the
shared transformer's encoding), gold docs keep their own tokens and sentences, and batches
keep their order."""

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.pipeline.predict import predict_on_gold, scored_batches

from ..conftest import OLD_ROWS

TEXTS = [" ".join(words) for words, _ in OLD_ROWS] + ["merkel met macron in berlin"]


def entities_of(doc: Doc) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.label_) for e in doc.ents]


def test_a_listener_is_scored_on_the_encoding_of_the_transformer_before_it(trained_multitask):
    nlp = spacy.load(trained_multitask)
    batches = list(scored_batches(nlp, "bert_ner", TEXTS, batch_size=3))
    assert all(doc._.trf_data.tensors for batch in batches for doc in batch.docs)
    decoded = [found for batch in batches for found in batch.decoded()]
    expected = [entities_of(doc) for doc in nlp.pipe(TEXTS)]
    assert any(expected)  # the trained pipeline finds entities: the comparison has teeth
    found = [[(s.start, s.end, s.label_) for s, _ in doc.entities] for doc in decoded]
    assert found == expected


def test_the_pipes_after_the_component_do_not_run(trained_multitask):
    nlp = spacy.load(trained_multitask)
    nlp.add_pipe("sentencizer", last=True)
    docs = next(scored_batches(nlp, "bert_ner", ["merkel met macron . in paris"])).docs
    assert docs[0].has_annotation("TAG")  # the tagger before bert_ner ran
    assert not docs[0].has_annotation("SENT_START")  # the sentencizer after it did not
    assert nlp.pipe_names == ["transformer", "tagger", "bert_ner", "sentencizer"]


def test_gold_docs_are_scored_on_their_own_tokens_and_sentences(trained_tiny):
    nlp = spacy.load(trained_tiny)
    words = ["angela", "merkel-met", "macron", "in", "paris", "berlin", "met", "merkel"]
    gold = Doc(
        nlp.vocab,
        words=words,
        spaces=[True] * 7 + [False],
        sent_starts=[True] + [False] * 4 + [True, False, False],
        ents=["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-LOC", "O", "B-PER"],
    )
    batch = next(scored_batches(nlp, "bert_ner", [gold]))
    (doc,) = batch.docs
    assert [t.text for t in doc] == words  # spaCy would split "merkel-met"
    assert doc.text == gold.text
    assert [t.is_sent_start for t in doc] == [t.is_sent_start for t in gold]
    assert not doc.ents and gold.ents  # the copy carries no entity, the gold is untouched
    (logits,) = batch.logits()
    assert logits.shape == (len(words), len(batch.pipe.tag_scheme.tags))


def test_batches_keep_the_order_and_scores_of_one_doc_at_a_time(trained_tiny):
    nlp = spacy.load(trained_tiny)
    pipe = nlp.get_pipe("bert_ner")
    batches = list(scored_batches(nlp, "bert_ner", TEXTS, batch_size=3))
    assert [len(batch.docs) for batch in batches] == [3, 1]
    docs = [doc for batch in batches for doc in batch.docs]
    assert [doc.text for doc in docs] == TEXTS
    logits = [lg for batch in batches for lg in batch.logits()]
    for doc, doc_logits in zip(docs, logits, strict=True):
        alone = pipe.model.ops.to_numpy(pipe.predict([nlp.make_doc(doc.text)])[0])
        np.testing.assert_allclose(doc_logits, alone, rtol=1e-4, atol=1e-5)


def test_a_component_that_is_not_bert_ner_is_refused(trained_multitask):
    nlp = spacy.load(trained_multitask)
    with pytest.raises(BertNERError, match="^tagger: not a bert_ner component$"):
        next(scored_batches(nlp, "tagger", TEXTS))


def test_predict_on_gold_runs_the_whole_pipeline_on_the_gold_tokens(trained_tiny):
    nlp = spacy.load(trained_tiny)
    nlp.get_pipe("bert_ner").cfg["spans_key"] = "found"
    gold = [Doc(nlp.vocab, words=words, ents=tags) for words, tags in OLD_ROWS]
    predicted = predict_on_gold(nlp, gold)
    assert [[t.text for t in doc] for doc in predicted] == [words for words, _ in OLD_ROWS]
    assert [entities_of(doc) for doc in predicted] == [
        [(s.start, s.end, s.label_) for s in doc.spans["found"]] for doc in predicted
    ]
    assert any(doc.ents for doc in predicted)  # the spans_key's entities, read as doc.ents
