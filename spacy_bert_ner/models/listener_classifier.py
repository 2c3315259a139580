"""The shared-encoder model: token vectors from an upstream transformer in, tag logits out.

A pipeline whose `transformer` component (spacy-transformers) encodes each doc once can feed
bert_ner through a `TransformerListener`, as it feeds a tagger or a parser: this model is that
listener (the `tok2vec` sublayer, whose config spaCy's `replace_listeners` rewrites) followed by
a linear token-classification head. Its output is what `token_classifier` gives: one logit row
per spaCy token, so tag schemes, decoding, scores, gold handling and `add_label` are the same.

Two things of the standalone path are carried over:
- A token with no wordpiece (whitespace, control characters) gets "O" as it does there. Such a
  token reaches the head as a row of zeros (spacy-transformers aligns it to no wordpiece and
  pooling gives zeros), which a transformer's layer-normed output never is.
- The encoder hears bert_ner as loudly as its other listeners. spaCy's tagger, parser and ner
  send it the gradient of a loss summed over tokens; bert_ner's loss is a mean (what its head
  and the standalone model are tuned for), so the gradient it sends upstream is scaled back to
  a sum. Left as a mean, a tagger beside it outweighed it by the batch's token count (about
  460) and the shared encoder learnt part-of-speech alone: cpu_multitask.cfg reached dev F1 21
  after 300 updates, where the standalone model has 86.5.
- The head learns `head_lr_scale` times faster than the encoder. thinc's optimizer has one rate
  per run, so the head stores its weights divided by the scale and multiplies them back in
  forward: Adam's step is the same size whatever the gradient's scale, so every step moves
  the effective weights `head_lr_scale` times further.
"""

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d, Ragged

from ..errors import BertNERError
from .head import head_rows, outside_index
from .rows import NO_PIECE_LOGIT, split_rows
from .windows import N_CASE_CLASSES, case_classes

#: The thinc model's name: what tells this architecture's models from the standalone ones.
MODEL_NAME = "listener_token_classifier"


def first_piece_forward(
    model: Model[Ragged, Floats2d], pieces: Ragged, is_train: bool
) -> tuple[Floats2d, Callable[[Floats2d], Ragged]]:
    """Each token's first wordpiece vector, or zeros for a token that has none.

    thinc's `reduce_first` refuses tokens without pieces, which spaCy's tokenizer makes from
    whitespace; those become zero rows, which the head recognises (see the module doc).
    """
    xp = model.ops.xp
    lengths = xp.asarray(pieces.lengths)
    starts = xp.cumsum(lengths) - lengths
    has_piece = lengths > 0
    data = cast(Floats2d, pieces.dataXd)
    vectors = model.ops.alloc2f(len(lengths), data.shape[1], dtype=data.dtype)
    vectors[has_piece] = data[starts[has_piece]]

    def backprop(d_vectors: Floats2d) -> Ragged:
        d_data = model.ops.alloc2f(*data.shape, dtype=d_vectors.dtype)
        d_data[starts[has_piece]] = d_vectors[has_piece]
        return Ragged(d_data, pieces.lengths)

    return vectors, backprop


def init(model: Model, X: Sequence[Doc] | None = None, Y: Sequence[str] | None = None) -> None:
    """Size the head: its input from the vectors the listener gives for `X`, its output from
    the tag set `Y` (a head that exists is resized by `resize_output`'s rule)."""
    tok2vec = model.layers[0]
    if Y is None:
        if not model.attrs["tags"]:
            raise BertNERError(
                "bert_ner with a transformer listener has no tags yet: run nlp.initialize() "
                "with training examples (or `labels`), as for spaCy's own ner"
            )
        return
    if model.has_param("W"):
        resize_output(model, Y)
        return
    if X is None:
        raise BertNERError("bert_ner with a transformer listener needs sample docs to initialize")
    tok2vec.initialize(X=list(X))
    vectors = tok2vec.predict(list(X))
    model.set_dim("nI", next(v.shape[1] for v in vectors if v.shape[1]))
    model.attrs["tags"] = list(Y)
    n_in, scale = model.get_dim("nI"), model.attrs["head_lr_scale"]
    limit = (6.0 / (n_in + len(Y))) ** 0.5  # Glorot, as thinc's Linear
    weights = np.random.uniform(-limit, limit, (len(Y), n_in)).astype("float32")
    model.set_param("W", model.ops.asarray2f(weights / scale))
    model.set_param("b", model.ops.alloc1f(len(Y)))
    if model.attrs["case_feature"]:
        model.set_param("C", model.ops.alloc2f(N_CASE_CLASSES, len(Y)))


def forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[list[Floats2d], Callable[[list[Floats2d]], list[Doc]]]:
    if not any(len(doc) for doc in docs):
        # spacy-transformers' pooling fails on a batch without a single token (`nlp("")`);
        # spaCy's tagger skips such a batch in the same way.
        n_tags = len(model.attrs["tags"])
        return [model.ops.alloc2f(0, n_tags) for _ in docs], lambda d_scores: []
    xp = model.ops.xp
    tok2vec = model.layers[0]
    n_in, scale = model.get_dim("nI"), model.attrs["head_lr_scale"]
    weights = model.get_param("W") * scale
    vectors, backprop_tok2vec = tok2vec(docs, is_train)
    # An empty doc comes back 0 wide; its 0 rows fit any width (and make an empty batch 2d).
    no_rows = xp.zeros((0, n_in), dtype="f")
    X = xp.concatenate([no_rows, *(v if v.shape[1] else no_rows for v in vectors)])
    logits = X @ weights.T + model.get_param("b") * scale
    cases = None
    if model.has_param("C"):
        cases = xp.asarray(np.concatenate([np.zeros(0, "i"), *map(case_classes, docs)]), "i")
        logits += model.get_param("C")[cases] * scale
    no_piece = ~X.any(axis=1)
    outside = outside_index(model.attrs["tags"])
    logits[no_piece] = -NO_PIECE_LOGIT
    logits[no_piece, outside] = NO_PIECE_LOGIT
    lengths = [len(doc) for doc in docs]

    def backprop(d_scores: list[Floats2d]) -> list[Doc]:
        d_logits = xp.concatenate(d_scores)
        d_logits[no_piece] = 0.0
        model.inc_grad("W", (d_logits.T @ X) * scale)
        model.inc_grad("b", d_logits.sum(axis=0) * scale)
        if cases is not None:
            d_case = model.ops.alloc2f(N_CASE_CLASSES, d_logits.shape[1])
            xp.add.at(d_case, cases, d_logits)
            model.inc_grad("C", d_case * scale)
        # Scaled from the gradient of a mean over tokens to that of a sum: see the module doc.
        d_X = (d_logits @ weights) * len(d_logits)
        return backprop_tok2vec(split_rows(d_X, lengths))

    return split_rows(logits, lengths), backprop


def resize_output(
    model: Model, tags: Sequence[str], *, below_outside: float | None = None
) -> Model:
    """Give the head the tag set `tags` by the rule both architectures follow (`head.head_rows`,
    which says why): the rows of the tags it has are kept bit for bit (a reorder moves them),
    new ones start `below_outside` under "O", else from zeros.
    """
    sources = head_rows(model.attrs["tags"], tags, below_outside=below_outside)
    if sources is None:
        return model
    scale = model.attrs["head_lr_scale"]
    # One row per tag in W and b; one column per tag in C.
    old: dict[str, Any] = {"W": model.get_param("W"), "b": model.get_param("b")}
    if model.has_param("C"):
        old["C.T"] = model.get_param("C").T
    new = {name: model.ops.alloc((len(tags), *value.shape[1:])) for name, value in old.items()}
    for i, source in enumerate(sources):
        if source is None:
            continue
        for name, value in new.items():
            value[i] = old[name][source.row]
        new["b"][i] -= source.bias_offset / scale  # b is stored divided by the scale
    model.set_param("W", new["W"])
    model.set_param("b", new["b"])
    if "C.T" in new:
        model.set_param("C", model.ops.xp.ascontiguousarray(new["C.T"].T))
    model.attrs["tags"] = list(tags)
    return model
