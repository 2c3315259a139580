"""The component as most pipeline tests use it: the tiny BERT, loaded once per module."""

import pytest
import spacy

TEXT = "Angela Merkel met Emmanuel Macron in Berlin."


@pytest.fixture(scope="module")
def nlp(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    return nlp


def ents(doc):
    return [(e.start, e.end, e.label_, e._.bert_ner_score) for e in doc.ents]
