"""The teacher distributions file: the mean of the teachers' softmax per document, keyed by
the document's words; a rerun predicts only what the file lacks; other teachers replace it;
teachers with other tags are refused."""

import re
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.pipeline.losses import log_softmax
from spacy_bert_ner.training import distill
from spacy_bert_ner.training.distill import (
    compute_teacher_distributions,
    document_key,
    read_teacher_distributions,
)

from ..conftest import NEW_ROWS, examples_of
from .conftest import DOCS, document, write_corpus


def softmax_of(path: Path, doc: Doc) -> np.ndarray:
    nlp = spacy.load(path)
    logits = nlp.get_pipe("bert_ner").predict([Doc(nlp.vocab, words=[t.text for t in doc])])[0]
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64), np))


def test_the_file_holds_the_mean_of_the_teachers_distributions_per_document(teachers, tmp_path):
    corpus = write_corpus(tmp_path / "train.spacy")
    run = compute_teacher_distributions(teachers, corpus, tmp_path / "teachers.msgpack")
    assert (run.n_docs, run.computed, run.replaced) == (3, 3, False)

    saved = read_teacher_distributions(tmp_path / "teachers.msgpack")
    assert saved.tags == list(spacy.load(teachers[0]).get_pipe("bert_ner").tag_scheme.tags)
    assert [t["path"] for t in saved.teachers] == [str(p) for p in teachers]
    vocab = spacy.blank("en").vocab
    for rows in DOCS:
        doc = document(vocab, rows)
        stored = saved.docs[document_key(doc)]
        assert stored.dtype == np.float16 and stored.shape == (len(doc), len(saved.tags))
        expected = (softmax_of(teachers[0], doc) + softmax_of(teachers[1], doc)) / 2
        np.testing.assert_allclose(stored, expected, atol=1e-3)
        assert not np.allclose(softmax_of(teachers[0], doc), expected, atol=1e-2)


def test_a_rerun_predicts_only_the_documents_the_file_lacks(teachers, tmp_path, monkeypatch):
    output = tmp_path / "teachers.msgpack"
    compute_teacher_distributions(teachers, write_corpus(tmp_path / "a.spacy"), output)
    written = output.stat().st_mtime_ns
    loaded = []
    load = distill.load_pipeline
    monkeypatch.setattr(distill, "load_pipeline", lambda *args: loaded.append(args) or load(*args))

    again = compute_teacher_distributions(teachers, tmp_path / "a.spacy", output)
    assert (again.n_docs, again.computed) == (3, 0)
    assert not loaded and output.stat().st_mtime_ns == written

    grown = write_corpus(tmp_path / "b.spacy", [*DOCS, (2, 0)])
    more = compute_teacher_distributions(teachers, grown, output)
    assert (more.n_docs, more.computed, more.replaced) == (4, 1, False)
    assert len(loaded) == 2  # each teacher once, for the new document
    assert len(read_teacher_distributions(output).docs) == 4


def test_a_file_made_by_other_teachers_is_replaced(teachers, tmp_path):
    output = tmp_path / "teachers.msgpack"
    corpus = write_corpus(tmp_path / "train.spacy")
    compute_teacher_distributions(teachers, corpus, output)
    run = compute_teacher_distributions(teachers[:1], corpus, output)
    assert (run.computed, run.replaced) == (3, True)
    assert [t["path"] for t in read_teacher_distributions(output).teachers] == [str(teachers[0])]


def test_teachers_of_other_tags_are_refused(teachers, tiny_bert, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    misc_examples = examples_of(nlp, NEW_ROWS)
    nlp.initialize(lambda: misc_examples)  # a head for MISC alone
    nlp.to_disk(tmp_path / "misc")
    corpus = write_corpus(tmp_path / "train.spacy")
    with pytest.raises(
        BertNERError, match="^" + re.escape(f"{tmp_path / 'misc'}: the teacher predicts")
    ):
        compute_teacher_distributions(
            [teachers[0], tmp_path / "misc"], corpus, tmp_path / "out.msgpack"
        )
    assert not (tmp_path / "out.msgpack").exists()


@pytest.mark.parametrize("content", [b"", b"\x81\xa1a\x01"])
def test_a_file_that_is_not_ours_is_one_error_line(tmp_path, content):
    (tmp_path / "x.msgpack").write_bytes(content)
    with pytest.raises(BertNERError, match=r"x.msgpack: .*teacher distributions"):
        read_teacher_distributions(tmp_path / "x.msgpack")
