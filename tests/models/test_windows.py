"""Windows: every token gets a row, from the window where it is farthest from an edge."""

import numpy as np
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc
from transformers import AutoTokenizer

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.models.windows import (
    CASE_LOWER,
    CASE_MIXED,
    CASE_NONE,
    CASE_TITLE,
    CASE_UPPER,
    assign_windows,
    case_classes,
    first_pieces,
    make_windows,
    window_starts,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


@pytest.fixture(scope="module")
def blank():
    """One blank pipeline for all examples: making one costs 0.1 s."""
    return spacy.blank("en")


def test_window_starts_cover_everything_with_overlap():
    starts = window_starts(n_pieces=25, width=10, stride=4)
    assert starts.tolist() == [0, 6, 12, 15]
    assert window_starts(n_pieces=10, width=10, stride=4).tolist() == [0]
    assert window_starts(n_pieces=3, width=10, stride=0).tolist() == [0]


@settings(deadline=None, max_examples=500)
@given(
    n_pieces=st.integers(1, 400),
    width=st.integers(2, 64),
    data=st.data(),
)
def test_each_piece_read_from_window_where_it_is_farthest_from_an_edge(n_pieces, width, data):
    stride = data.draw(st.integers(0, width - 1))
    starts = window_starts(n_pieces, width, stride)
    pieces = np.arange(n_pieces)
    owner = assign_windows(pieces, starts, width)
    ends = np.minimum(starts + width, n_pieces)
    assert (starts[owner] <= pieces).all() and (pieces < ends[owner]).all()
    # Distance to the nearer edge of the chosen window is the best any window offers.
    inside = (starts[None, :] <= pieces[:, None]) & (pieces[:, None] < ends[None, :])
    margin = np.minimum(pieces[:, None] - starts[None, :], ends[None, :] - 1 - pieces[:, None])
    best = np.where(inside, margin, -1).max(axis=1)
    chosen = np.minimum(pieces - starts[owner], ends[owner] - 1 - pieces)
    assert (chosen == best).all()


def test_first_pieces_skips_words_without_pieces():
    assert first_pieces([0, 0, 2, 3, 3, 3], 5).tolist() == [0, -1, 2, 3, -1]
    assert first_pieces([], 2).tolist() == [-1, -1]


def test_make_windows_maps_every_token_once(tokenizer):
    nlp = spacy.blank("en")
    docs = [nlp("berlin " * 150), nlp("Angela Merkel"), nlp("  "), nlp("")]
    batch = make_windows(
        docs, tokenizer, max_length=32, stride=8, window_batch_size=3, max_batch_pieces=4096
    )
    rows = np.concatenate([c.token_row for c in batch.chunks])
    # "  " is a whitespace token: the only token without a wordpiece.
    expected = [i for i in range(batch.n_tokens) if i != 150 + 2]
    assert sorted(rows.tolist()) == expected
    for chunk in batch.chunks:
        assert chunk.input_ids.shape[0] <= 3 and chunk.input_ids.shape[1] <= 32
        # Each token reads its own first piece: "berlin" is one piece in the tiny vocab.
        read = chunk.input_ids[chunk.window_index, chunk.position]
        assert (read != tokenizer.pad_token_id).all()
        assert not np.isin(read, [tokenizer.cls_token_id, tokenizer.sep_token_id]).any()
    widths = [c.input_ids.shape[1] for c in batch.chunks]
    assert widths == sorted(widths, reverse=True)


def test_bad_window_settings_are_explained(tokenizer):
    doc = spacy.blank("en")("berlin")
    with pytest.raises(BertNERError, match="stride"):
        make_windows(
            [doc], tokenizer, max_length=16, stride=14, window_batch_size=4, max_batch_pieces=64
        )


@settings(deadline=None, max_examples=200)
@given(text=st.text(max_size=300))
def test_any_text_windows(tokenizer, blank, text):
    doc = blank(text)
    batch = make_windows(
        [doc], tokenizer, max_length=16, stride=4, window_batch_size=2, max_batch_pieces=64
    )
    rows = np.concatenate([c.token_row for c in batch.chunks]) if batch.chunks else []
    assert len(set(rows)) == len(rows)
    for i in rows:
        assert doc[int(i)].text.strip()


def test_chunks_respect_the_piece_budget(tokenizer):
    nlp = spacy.blank("en")
    docs = [nlp("berlin " * 300)] + [nlp("paris"), nlp("angela merkel")] * 3
    batch = make_windows(
        docs, tokenizer, max_length=32, stride=8, window_batch_size=32, max_batch_pieces=100
    )
    for chunk in batch.chunks:
        assert chunk.input_ids.size <= 100 or chunk.input_ids.shape[0] == 1
    # The short docs still share a chunk: the budget counts padded pieces, not windows.
    assert batch.chunks[-1].input_ids.shape[0] >= 5
    rows = np.concatenate([c.token_row for c in batch.chunks])
    assert sorted(rows.tolist()) == list(range(batch.n_tokens))


WORDS = st.one_of(
    st.sampled_from(["berlin", "angela", "merkel", "!!!", "a" * 150, " ", "\u200b", "北京"]),
    st.text(min_size=1, max_size=10),
)


@settings(deadline=None, max_examples=500)
@given(
    docs=st.lists(st.lists(WORDS, max_size=40), min_size=1, max_size=4),
    max_length=st.integers(4, 40),
    window_batch_size=st.integers(1, 8),
    max_batch_pieces=st.integers(1, 400),
    data=st.data(),
)
def test_any_batch_and_settings_read_each_token_from_its_own_first_piece(
    tokenizer, blank, docs, max_length, window_batch_size, max_batch_pieces, data
):
    stride = data.draw(st.integers(0, max_length - 3))  # the tiny BERT adds [CLS] and [SEP]
    batch = make_windows(
        [Doc(blank.vocab, words=words) for words in docs],
        tokenizer,
        max_length=max_length,
        stride=stride,
        window_batch_size=window_batch_size,
        max_batch_pieces=max_batch_pieces,
    )
    # Each token's first wordpiece, from the tokenizer on its own (None: it has none).
    expected = []
    for words in docs:
        if not words:
            continue
        encoding = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        firsts = {}
        for piece_id, word in zip(encoding.input_ids, encoding.word_ids(), strict=True):
            firsts.setdefault(word, piece_id)
        expected += [firsts.get(i) for i in range(len(words))]

    assert batch.n_tokens == len(expected) == sum(len(words) for words in docs)
    read: dict[int, int] = {}
    for chunk in batch.chunks:
        rows, width = chunk.input_ids.shape
        assert width <= max_length and rows <= window_batch_size
        assert chunk.input_ids.size <= max_batch_pieces or rows == 1
        lengths = chunk.attention_mask.sum(axis=1)
        assert (chunk.attention_mask == (np.arange(width) < lengths[:, None])).all()
        assert (chunk.input_ids[:, 0] == tokenizer.cls_token_id).all()
        assert (chunk.input_ids[np.arange(rows), lengths - 1] == tokenizer.sep_token_id).all()
        # Read inside the window, never on [CLS], [SEP] or padding.
        assert (chunk.position >= 1).all()
        assert (chunk.position < lengths[chunk.window_index] - 1).all()
        for row, piece in zip(
            chunk.token_row.tolist(),
            chunk.input_ids[chunk.window_index, chunk.position].tolist(),
            strict=True,
        ):
            assert row not in read
            read[row] = piece
    assert read == {i: piece for i, piece in enumerate(expected) if piece is not None}


def test_case_classes_of_words(blank):
    words = ["Apple", "apple", "APPLE", "U.S.", "McDonald", "iPhone", "1996", ",", "Ölfeld"]
    expected = [CASE_TITLE, CASE_LOWER, CASE_UPPER, CASE_UPPER, CASE_MIXED, CASE_MIXED]
    expected += [CASE_NONE, CASE_NONE, CASE_TITLE]
    assert case_classes(Doc(blank.vocab, words=words)).tolist() == expected
    assert case_classes(Doc(blank.vocab, words=[])).tolist() == []


@settings(deadline=None, max_examples=200)
@given(
    docs=st.lists(st.lists(st.sampled_from(["Paris", "paris", "UN", "1", "met"]), max_size=30)),
    max_length=st.integers(4, 20),
)
def test_every_piece_carries_its_words_case_and_specials_carry_none(
    tokenizer, blank, docs, max_length
):
    batch = make_windows(
        [Doc(blank.vocab, words=words) for words in docs],
        tokenizer,
        max_length=max_length,
        stride=1,
        window_batch_size=3,
        max_batch_pieces=64,
        with_case=True,
    )
    cases = np.concatenate(
        [case_classes(Doc(blank.vocab, words=words)) for words in docs] + [np.zeros(0, int)]
    )
    for chunk in batch.chunks:
        assert chunk.token_type_ids is not None
        assert chunk.token_type_ids.shape == chunk.input_ids.shape
        # [CLS], [SEP] and padding are class 0, as in the encoder's own training.
        specials = np.isin(chunk.input_ids, [tokenizer.cls_token_id, tokenizer.sep_token_id])
        assert (chunk.token_type_ids[specials | (chunk.attention_mask == 0)] == CASE_NONE).all()
        read = chunk.token_type_ids[chunk.window_index, chunk.position]
        assert (read == cases[chunk.token_row]).all()


def test_windows_have_no_token_types_unless_asked(tokenizer, blank):
    batch = make_windows(
        [Doc(blank.vocab, words=["Paris", "met"])],
        tokenizer,
        max_length=16,
        stride=None,
        window_batch_size=4,
        max_batch_pieces=64,
    )
    assert all(chunk.token_type_ids is None for chunk in batch.chunks)
