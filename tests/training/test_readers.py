"""The SentenceRuns reader: a null path passes config validation and is refused when read."""

import pytest
from spacy.util import registry

from spacy_bert_ner.errors import BertNERError


def test_a_null_path_validates_and_is_refused_when_the_reader_is_built():
    config = {"corpus": {"@readers": "spacy_bert_ner.SentenceRuns.v1", "path": None}}
    registry.fill(config, validate=True)  # what `spacy assemble` and `debug config` do
    with pytest.raises(BertNERError, match=r"SentenceRuns.v1: no corpus path"):
        registry.resolve(config)
