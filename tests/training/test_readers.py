"""The SentenceRuns reader: a null path passes config validation and is refused when read.
The TeacherRuns reader: SentenceRuns' examples with their tokens' teacher distributions."""

from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.util import registry

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.pipeline.teacher import TEACHER_KEY
from spacy_bert_ner.training.distill import (
    compute_teacher_distributions,
    document_key,
    read_teacher_distributions,
)

from .conftest import DOCS, document, write_corpus


def test_a_null_path_validates_and_is_refused_when_the_reader_is_built():
    config = {"corpus": {"@readers": "spacy_bert_ner.SentenceRuns.v1", "path": None}}
    registry.fill(config, validate=True)  # what `spacy assemble` and `debug config` do
    with pytest.raises(BertNERError, match=r"SentenceRuns.v1: no corpus path"):
        registry.resolve(config)


def teacher_runs(corpus: Path, teachers_file: Path, max_words: int = 6):
    config = {
        "corpus": {
            "@readers": "spacy_bert_ner.TeacherRuns.v1",
            "path": str(corpus),
            "teachers": str(teachers_file),
            "max_words": max_words,
        }
    }
    return registry.resolve(config)["corpus"]


def test_teacher_runs_are_sentence_runs_with_their_tokens_rows(teachers, tmp_path):
    corpus = write_corpus(tmp_path / "train.spacy")
    compute_teacher_distributions(teachers, corpus, tmp_path / "t.msgpack")
    saved = read_teacher_distributions(tmp_path / "t.msgpack")
    nlp = spacy.blank("en")
    plain = registry.resolve(
        {"c": {"@readers": "spacy_bert_ner.SentenceRuns.v1", "path": str(corpus), "max_words": 6}}
    )["c"]
    taught = list(teacher_runs(corpus, tmp_path / "t.msgpack")(nlp))
    expected = list(plain(nlp))
    assert len(taught) == len(expected) > len(DOCS)  # documents were cut into runs
    for eg, same in zip(taught, expected, strict=True):
        assert [t.text for t in eg.predicted] == [t.text for t in same.predicted]
        assert [e.label_ for e in eg.reference.ents] == [e.label_ for e in same.reference.ents]
    # The rows of each run are its document's rows at the run's tokens.
    vocab = spacy.blank("en").vocab
    runs = iter(taught)
    for rows in DOCS:
        doc = document(vocab, rows)
        doc_rows = saved.docs[document_key(doc)]
        start = 0
        while start < len(doc):
            teacher = next(runs).reference.user_data[TEACHER_KEY]
            end = start + len(teacher["probs"])
            assert teacher["tags"] == saved.tags
            np.testing.assert_array_equal(teacher["probs"], doc_rows[start:end])
            start = end


def test_a_document_the_file_lacks_is_an_error_naming_it(teachers, tmp_path):
    compute_teacher_distributions(
        teachers, write_corpus(tmp_path / "a.spacy"), tmp_path / "t.msgpack"
    )
    grown = write_corpus(tmp_path / "b.spacy", [*DOCS, (2, 1)])
    reader = teacher_runs(grown, tmp_path / "t.msgpack")
    with pytest.raises(BertNERError, match=r"no teacher distributions for the document 'paris"):
        list(reader(spacy.blank("en")))


def test_teacher_runs_need_a_teachers_file(tmp_path):
    config = {"c": {"@readers": "spacy_bert_ner.TeacherRuns.v1", "path": "x", "teachers": None}}
    registry.fill(config, validate=True)  # what `spacy assemble` and `debug config` do
    with pytest.raises(BertNERError, match=r"no teacher distributions file"):
        registry.resolve(config)


def test_teacher_runs_keep_their_distributions_through_the_case_augmenter(teachers, tmp_path):
    corpus = write_corpus(tmp_path / "train.spacy")
    compute_teacher_distributions(teachers, corpus, tmp_path / "t.msgpack")
    config = {
        "corpus": {
            "@readers": "spacy_bert_ner.TeacherRuns.v1",
            "path": str(corpus),
            "teachers": str(tmp_path / "t.msgpack"),
            "augmenter": {"@augmenters": "spacy_bert_ner.case_variants.v1", "upper": 1.0},
        }
    }
    examples = list(registry.resolve(config)["corpus"](spacy.blank("en")))
    assert examples and all(eg.predicted.text.isupper() for eg in examples)
    assert all(
        len(eg.reference.user_data[TEACHER_KEY]["probs"]) == len(eg.predicted) for eg in examples
    )
