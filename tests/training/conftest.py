"""Fixtures of the distillation tests: a tiny corpus of documents with sentence starts, and
two tiny teachers that disagree."""

from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin

from ..conftest import OLD_ROWS

# Documents of the tiny vocabulary as rows of OLD_ROWS, one sentence per row.
DOCS = [(0, 1), (2,), (1, 0, 2)]


def document(vocab, rows: tuple[int, ...]) -> Doc:
    words, tags, starts = [], [], []
    for row in rows:
        row_words, row_tags = OLD_ROWS[row]
        words += row_words
        tags += row_tags
        starts += [True] + [False] * (len(row_words) - 1)
    return Doc(vocab, words=words, ents=tags, sent_starts=starts)


def write_corpus(path: Path, docs=DOCS) -> Path:
    vocab = spacy.blank("en").vocab
    DocBin(docs=[document(vocab, rows) for rows in docs]).to_disk(path)
    return path


@pytest.fixture(scope="session")
def teachers(trained_tiny, tmp_path_factory) -> list[Path]:
    """trained_tiny and a copy whose head's biases moved: two teachers that disagree."""
    other = spacy.load(trained_tiny)
    classifier = other.get_pipe("bert_ner").hf_model.classifier
    with torch.no_grad():
        shift = np.linspace(-1.0, 1.0, len(classifier.bias))
        classifier.bias += torch.tensor(shift, dtype=classifier.bias.dtype)
    path = tmp_path_factory.mktemp("teacher") / "other"
    other.to_disk(path)
    return [trained_tiny, path]
