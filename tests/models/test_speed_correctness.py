"""Correctness of the paths the speed benchmark relies on (no timing here).

Batching sorts windows by length across the docs of a batch; whatever the batch and chunk
sizes, every doc must get back its own entities, in input order. The int8 option must change
speed, not answers: on the tiny model it has to agree with fp32 on most tokens.
"""

import random
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.tokens import Doc

import spacy_bert_ner  # noqa: F401  (registers the factory)

from ..conftest import WORDS


def _nlp(model_dir: Path, **model: object) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": {"name": str(model_dir), **model}})
    return nlp


def _mixed_length_words(seed: int = 0) -> list[list[str]]:
    """Docs from 1 word to several windows, shuffled so lengths alternate within batches."""
    rng = random.Random(seed)
    vocab = [*WORDS, "x", "qz", "tokyo", "1999", "!", "--"]
    lengths = [1, 2, 3, 5, 8, 13, 21, 34, 55, 4, 7, 40, 1, 9, 17, 2, 30, 11]
    words = [[rng.choice(vocab) for _ in range(length)] for length in lengths]
    rng.shuffle(words)
    return words


def _ents(doc: Doc) -> list[tuple[int, int, str]]:
    return [(ent.start, ent.end, ent.label_) for ent in doc.ents]


@pytest.mark.parametrize("window_batch_size", [1, 3, 32])
def test_pipe_batches_keep_input_order(tiny_bert: Path, window_batch_size: int) -> None:
    # Short windows, so the longer docs span several and chunks mix pieces of several docs.
    nlp = _nlp(tiny_bert, window_batch_size=window_batch_size, max_length=32, stride=8)
    texts = _mixed_length_words()
    one_by_one = [_ents(nlp(Doc(nlp.vocab, words=words))) for words in texts]
    # The random tiny model must predict something, or the comparison proves nothing.
    assert sum(len(ents) for ents in one_by_one) >= 10
    for batch_size in (1, 5, 64):
        docs = [Doc(nlp.vocab, words=words) for words in texts]
        out = list(nlp.pipe(docs, batch_size=batch_size))
        assert [doc.text for doc in out] == [doc.text for doc in docs]
        assert all(a is b for a, b in zip(out, docs, strict=True))
        assert [_ents(doc) for doc in out] == one_by_one, f"batch_size={batch_size}"


def test_pipe_of_strings_matches_single_calls(tiny_bert: Path) -> None:
    nlp = _nlp(tiny_bert, window_batch_size=4)
    texts = [" ".join(words) for words in _mixed_length_words(seed=1)]
    single = [_ents(nlp(text)) for text in texts]
    assert [_ents(doc) for doc in nlp.pipe(texts, batch_size=6)] == single


def test_int8_agrees_with_fp32(tiny_bert: Path) -> None:
    texts = _mixed_length_words(seed=2)
    fp32 = _nlp(tiny_bert, window_batch_size=8)
    int8 = _nlp(tiny_bert, window_batch_size=8, precision="int8")
    gold = list(fp32.pipe([Doc(fp32.vocab, words=w) for w in texts], batch_size=8))
    quant = list(int8.pipe([Doc(int8.vocab, words=w) for w in texts], batch_size=8))

    def tags(doc: Doc) -> list[str]:
        return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in doc]

    fp32_tags = [tag for doc in gold for tag in tags(doc)]
    int8_tags = [tag for doc in quant for tag in tags(doc)]
    agree = sum(a == b for a, b in zip(fp32_tags, int8_tags, strict=True)) / len(fp32_tags)
    assert agree >= 0.9, f"int8 agrees with fp32 on only {agree:.0%} of token tags"
    fp32_ents = {(i, *e) for i, doc in enumerate(gold) for e in _ents(doc)}
    int8_ents = {(i, *e) for i, doc in enumerate(quant) for e in _ents(doc)}
    assert fp32_ents, "the tiny model predicted no entities"
    shared = len(fp32_ents & int8_ents) / max(len(fp32_ents), len(int8_ents))
    assert shared >= 0.75, f"int8 shares only {shared:.0%} of fp32's entities"
    # The fp32 weights stay fp32 (they are what gets saved).
    pipe: Any = int8.get_pipe("bert_ner")
    saved = pipe.hf_model
    assert all(p.dtype.is_floating_point for p in saved.parameters())
