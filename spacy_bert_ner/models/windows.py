"""Where a `Doc` becomes wordpiece windows, and where window outputs come back to tokens.

A doc is tokenized once, as a whole, by the model's fast tokenizer (`is_split_into_words`, so
spaCy's tokens stay the unit and `word_ids()` maps pieces back). Its wordpieces are then cut
into windows of at most `max_length` pieces (special tokens included) that ignore sentence
boundaries, because document context is worth about a point of F1 on CoNLL-2003. Consecutive
windows share `stride` pieces; a piece in that overlap takes its prediction from the window in
which it sits farther from an edge, so every token is predicted with context on both sides
wherever the doc allows it. Nothing is truncated: a doc of any length gives as many windows as it
needs, and the windows of a batch are run in length-sorted chunks so memory follows the chunk,
not the doc.

For an encoder given case embeddings (see `head.add_case_embeddings`), every piece also
carries its word's letter case (`case_classes`) as its token type id: an uncased vocabulary
maps "Apple" and "apple" to the same pieces, and the case is the best single cue for names.

Each spaCy token is represented by its first wordpiece. Tokens that yield no wordpiece
(whitespace, zero-width and control characters) have no row: the model fills theirs with a
fixed "O" so they can never be part of an entity.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from spacy.attrs import IS_ALPHA, IS_LOWER, IS_TITLE, IS_UPPER
from spacy.tokens import Doc
from tokenizers import Encoding

from ..errors import BertNERError

IntArray = NDArray[np.int64]
#: Letter-case classes of a word, as token type ids: no letters (also special tokens and
#: padding), lower, Title, UPPER, and other letter mixes ("McDonald", "iPhone").
N_CASE_CLASSES = 5
CASE_NONE, CASE_LOWER, CASE_TITLE, CASE_UPPER, CASE_MIXED = range(N_CASE_CLASSES)
#: A transformers fast tokenizer (`FastTokenizer`); typed loosely because its
#: attributes are generated at run time and invisible to type checkers.
FastTokenizer = Any


@dataclass
class SpecialTokens:
    """The ids a model expects around every window ([CLS] ... [SEP] for BERT)."""

    prefix: list[int]
    suffix: list[int]
    pad_id: int

    @classmethod
    def of(cls, tokenizer: FastTokenizer) -> "SpecialTokens":
        # Ask the tokenizer rather than assuming BERT's layout, so RoBERTa-style models work.
        marker = -1
        wrapped = tokenizer.build_inputs_with_special_tokens([marker])
        at = wrapped.index(marker)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return cls(prefix=wrapped[:at], suffix=wrapped[at + 1 :], pad_id=pad_id)

    def __len__(self) -> int:
        return len(self.prefix) + len(self.suffix)


@dataclass
class WindowChunk:
    """Padded model inputs for a run of windows of similar length, plus where tokens read."""

    input_ids: IntArray  # (n_windows, width)
    attention_mask: IntArray  # (n_windows, width)
    token_type_ids: IntArray | None  # (n_windows, width): case classes, when asked for
    window_index: IntArray  # (n_tokens_in_chunk,): row in this chunk of each token's piece
    position: IntArray  # (n_tokens_in_chunk,): column of each token's first piece
    token_row: IntArray  # (n_tokens_in_chunk,): row of that token in the batch's token table


@dataclass
class WindowBatch:
    """All windows of a batch of docs, ready to run chunk by chunk.

    The batch's tokens form one table (docs concatenated in input order); `doc_starts` cuts it
    back into docs. Tokens absent from every chunk are those without a wordpiece.
    """

    chunks: list[WindowChunk]
    doc_starts: IntArray  # (n_docs + 1,) offsets into the token table
    n_pieces: int

    @property
    def n_tokens(self) -> int:
        return int(self.doc_starts[-1])


def window_starts(n_pieces: int, width: int, stride: int) -> IntArray:
    """Start offsets of windows of `width` pieces covering `n_pieces`, overlapping by `stride`.

    The last window is pulled back to end exactly at the last piece, so it is full-length and
    its tokens keep as much left context as the others.
    """
    if n_pieces <= width:
        return np.zeros(1, dtype=np.int64)
    step = width - stride
    starts = np.arange(0, n_pieces - width, step, dtype=np.int64)
    return np.append(starts, n_pieces - width)


def assign_windows(pieces: IntArray, starts: IntArray, width: int) -> IntArray:
    """Index of the window each piece is read from: the one where it is farthest from an edge.

    Between two overlapping windows that is decided by the midpoint of their overlap, which
    `searchsorted` applies to all pieces at once.
    """
    ends = starts + width
    # Piece p belongs to window w+1 once p - start[w+1] >= end[w] - 1 - p.
    bounds = (ends[:-1] + starts[1:]) // 2
    return np.searchsorted(bounds, pieces, side="right").astype(np.int64)


def first_pieces(word_ids: Sequence[int | None], n_words: int) -> IntArray:
    """Position of each word's first wordpiece, -1 for words that produced none."""
    firsts = np.full(n_words, -1, dtype=np.int64)
    if not word_ids:
        return firsts
    ids = np.asarray(word_ids, dtype=np.int64)
    # Reversed assignment leaves the smallest position per word.
    firsts[ids[::-1]] = np.arange(len(ids) - 1, -1, -1, dtype=np.int64)
    return firsts


def case_classes(doc: Doc) -> IntArray:
    """The letter-case class (`CASE_*`) of each token, from spaCy's lexeme flags."""
    if not len(doc):
        return np.zeros(0, dtype=np.int64)
    flags = doc.to_array([IS_LOWER, IS_TITLE, IS_UPPER, IS_ALPHA]).astype(bool)
    lower, title, upper, alpha = flags.T
    return np.select(
        [lower, upper, title, alpha], [CASE_LOWER, CASE_UPPER, CASE_TITLE, CASE_MIXED], CASE_NONE
    ).astype(np.int64)


def window_width_and_stride(
    max_length: int, stride: int | None, n_specials: int
) -> tuple[int, int]:
    """The wordpieces of text a window of `max_length` holds besides its `n_specials` special
    tokens, and the pieces consecutive windows share (None: a quarter of a window)."""
    width = max_length - n_specials
    if stride is None:
        stride = width // 4
    if width < 2 or not 0 <= stride < width:
        raise BertNERError(
            f"bert_ner: need max_length ({max_length}) > {n_specials + 1} and "
            f"0 <= stride ({stride}) < max_length - {n_specials} special tokens"
        )
    return width, stride


def make_windows(
    docs: Sequence[Doc],
    tokenizer: FastTokenizer,
    *,
    max_length: int,
    stride: int | None,
    window_batch_size: int,
    max_batch_pieces: int,
    with_case: bool = False,
) -> WindowBatch:
    """Tokenize a batch of docs once and pack their pieces into length-sorted window chunks.

    `stride` pieces are shared by consecutive windows; None shares a quarter of a window.
    `with_case` gives each chunk the case classes of its pieces as `token_type_ids`.
    """
    specials = SpecialTokens.of(tokenizer)
    width, stride = window_width_and_stride(max_length, stride, len(specials))
    encodings = _encode([[token.text for token in doc] for doc in docs], tokenizer)
    doc_starts = np.zeros(len(docs) + 1, dtype=np.int64)
    doc_starts[1:] = np.cumsum([len(doc) for doc in docs])

    windows: list[IntArray] = []
    window_cases: list[IntArray] | None = [] if with_case else None
    token_windows: list[IntArray] = []
    token_positions: list[IntArray] = []
    token_rows: list[IntArray] = []
    n_pieces = 0
    for i, doc in enumerate(docs):
        ids = np.asarray(encodings[i].ids, dtype=np.int64)
        n_pieces += len(ids)
        firsts = first_pieces(encodings[i].word_ids, len(doc))
        has_piece = np.flatnonzero(firsts >= 0)
        if not len(has_piece):
            continue
        starts = window_starts(len(ids), width, stride)
        owner = assign_windows(firsts[has_piece], starts, width)
        token_windows.append(owner + len(windows))
        token_positions.append(firsts[has_piece] - starts[owner] + len(specials.prefix))
        token_rows.append(has_piece + doc_starts[i])
        windows.extend(ids[start : start + width] for start in starts)
        if window_cases is not None:
            piece_cases = case_classes(doc)[np.asarray(encodings[i].word_ids, dtype=np.int64)]
            window_cases.extend(piece_cases[start : start + width] for start in starts)

    if not windows:
        return WindowBatch(chunks=[], doc_starts=doc_starts, n_pieces=n_pieces)
    return WindowBatch(
        chunks=list(
            _chunks(
                windows,
                window_cases,
                np.concatenate(token_windows),
                np.concatenate(token_positions),
                np.concatenate(token_rows),
                specials,
                window_batch_size,
                max_batch_pieces,
            )
        ),
        doc_starts=doc_starts,
        n_pieces=n_pieces,
    )


def _encode(words: list[list[str]], tokenizer: FastTokenizer) -> list[Encoding]:
    """Wordpieces of whole docs, straight from the Rust tokenizer.

    Going around `tokenizer.__call__` skips its Python-side batch conversion and its
    "longer than the maximum" warning, which does not apply: windows come after. Saved
    tokenizers may carry truncation or padding settings (MiniLM's pads to 128), which would
    silently cut docs, so they are switched off here.
    """
    backend = tokenizer.backend_tokenizer
    if backend.truncation is not None:
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
    return backend.encode_batch(words, is_pretokenized=True, add_special_tokens=False)


def _chunks(
    windows: list[IntArray],
    window_cases: list[IntArray] | None,
    token_windows: IntArray,
    token_positions: IntArray,
    token_rows: IntArray,
    specials: SpecialTokens,
    window_batch_size: int,
    max_batch_pieces: int,
) -> Iterator[WindowChunk]:
    """Sort windows by length (least padding) and pad them in chunks of at most
    `window_batch_size` windows and `max_batch_pieces` padded pieces (but one window at least):
    the piece budget is what keeps a long doc's full-length windows from costing more memory
    than a batch of sentences."""
    lengths = np.fromiter((len(w) for w in windows), dtype=np.int64, count=len(windows))
    order = np.argsort(-lengths, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    token_rank = rank[token_windows]
    by_rank = np.argsort(token_rank, kind="stable")
    token_rank, token_positions, token_rows = (
        token_rank[by_rank],
        token_positions[by_rank],
        token_rows[by_rank],
    )
    prefix = np.asarray(specials.prefix, dtype=np.int64)
    suffix = np.asarray(specials.suffix, dtype=np.int64)
    begin = 0
    while begin < len(order):
        width = int(lengths[order[begin]]) + len(specials)
        size = max(1, min(window_batch_size, max_batch_pieces // width))
        members = order[begin : begin + size]
        input_ids = np.full((len(members), width), specials.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(members), width), dtype=np.int64)
        token_type_ids = None if window_cases is None else np.zeros_like(input_ids)
        for row, index in enumerate(members):
            piece_ids = np.concatenate([prefix, windows[index], suffix])
            input_ids[row, : len(piece_ids)] = piece_ids
            attention_mask[row, : len(piece_ids)] = 1
            if token_type_ids is not None and window_cases is not None:
                start = len(prefix)
                token_type_ids[row, start : start + len(windows[index])] = window_cases[index]
        lo, hi = np.searchsorted(token_rank, [begin, begin + len(members)])
        yield WindowChunk(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            window_index=token_rank[lo:hi] - begin,
            position=token_positions[lo:hi],
            token_row=token_rows[lo:hi],
        )
        begin += len(members)
