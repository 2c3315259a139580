"""The pipelines the tests of `annotate` run: the tiny one, and one that fails on a text."""

from pathlib import Path

import pytest
import spacy
from spacy.language import Language


@Language.component("annotate_test_fail_on_boom")
def fail_on_boom(doc):
    """A component that fails on one document: stands in for any per-document failure."""
    if "boom" in doc.text:
        raise RuntimeError("boom")
    return doc


@pytest.fixture(scope="package")
def pipeline(tiny_bert, tmp_path_factory) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    path = tmp_path_factory.mktemp("annotate") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="package")
def fragile_pipeline(tiny_bert, tmp_path_factory) -> Path:
    """The tiny pipeline plus a component that fails on texts with "boom"."""
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    nlp.add_pipe("annotate_test_fail_on_boom")
    path = tmp_path_factory.mktemp("annotate") / "fragile"
    nlp.to_disk(path)
    return path
