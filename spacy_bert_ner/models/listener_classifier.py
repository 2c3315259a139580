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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d, Ragged
from transformers import PreTrainedModel

from ..errors import BertNERError, ModelLoadError
from ..io import atomic_path
from .head import head_rows, outside_index
from .rows import NO_PIECE_LOGIT, split_rows
from .settings import ARCHITECTURE_ATTR, ListenerSettings
from .windows import N_CASE_CLASSES, case_classes

#: The thinc model's name.
MODEL_NAME = "listener_token_classifier"
#: The head's tags, in the order of its rows: a thinc attr, so that they are saved with the
#: weights (thinc serializes attrs that msgpack can), as they always were.
TAGS_ATTR = "tags"
#: Settings a listener saved before they became `ListenerSettings` kept in its attrs; the
#: saved weights are stored divided by that `head_lr_scale` (see `rescale_saved_head`).
SAVED_SETTINGS_ATTRS = ("head_lr_scale", "case_feature")


@dataclass(frozen=True)
class ListenerArchitecture:
    """The listener's side of `model_api.ModelArchitecture`: its settings; its head's weights
    are the thinc model's params, its tags the `TAGS_ATTR` attr. Saved as thinc bytes (one
    file), like spaCy's own tagger or ner listening to a transformer."""

    settings: ListenerSettings

    saves_one_file: ClassVar[bool] = True
    has_own_model: ClassVar[bool] = False

    def is_ready(self, model: Model) -> bool:
        return bool(model.has_param("W"))

    def tags(self, model: Model) -> list[str]:
        return list(model.attrs[TAGS_ATTR])

    def declared_tags(self, model: Model) -> list[str] | None:
        return self.tags(model) or None

    def own_model(self, model: Model) -> PreTrainedModel:
        raise BertNERError(
            "bert_ner: a transformer listener has no model of its own; its encoder is the "
            "transformer component's"
        )

    def resize(
        self, model: Model, tags: Sequence[str], *, below_outside: float | None = None
    ) -> Model:
        return resize_output(model, tags, below_outside=below_outside)

    def save(self, model: Model, path: Path) -> None:
        with atomic_path(path) as tmp_path:
            model.to_disk(tmp_path)

    def load(self, model: Model, path: Path) -> None:
        try:
            model.from_disk(path)
        except ValueError as err:
            raise ModelLoadError(f"{path}: cannot read the weights ({err})") from None
        rescale_saved_head(model)

    def hold_in_memory(self, model: Model) -> None:
        """Nothing to hold: the weights were read whole."""

    def describe(self, model: Model) -> dict[str, object]:
        """Only the architecture: its windows and precision are the transformer's."""
        return {"architecture": MODEL_NAME}


def architecture_of(model: Model) -> ListenerArchitecture:
    return cast(ListenerArchitecture, model.attrs[ARCHITECTURE_ATTR])


def rescale_saved_head(model: Model) -> None:
    """Take the settings an older listener saved out of the attrs thinc read them into, and
    keep its head computing what it did: the weights were saved divided by the saved
    `head_lr_scale`, which the config's (now the one that counts) may not repeat."""
    saved = {key: model.attrs.pop(key) for key in SAVED_SETTINGS_ATTRS if key in model.attrs}
    scale = architecture_of(model).settings.head_lr_scale
    factor = saved.get("head_lr_scale", scale) / scale
    if factor != 1.0:
        for name in ("W", "b", "C"):
            if model.has_param(name):
                model.set_param(name, model.get_param(name) * factor)


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
    settings = architecture_of(model).settings
    if Y is None:
        if not model.attrs[TAGS_ATTR]:
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
    model.attrs[TAGS_ATTR] = list(Y)
    n_in, scale = model.get_dim("nI"), settings.head_lr_scale
    limit = (6.0 / (n_in + len(Y))) ** 0.5  # Glorot, as thinc's Linear
    weights = np.random.uniform(-limit, limit, (len(Y), n_in)).astype("float32")
    model.set_param("W", model.ops.asarray2f(cast(Floats2d, weights / scale)))
    model.set_param("b", model.ops.alloc1f(len(Y)))
    if settings.case_feature:
        model.set_param("C", model.ops.alloc2f(N_CASE_CLASSES, len(Y)))


def forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[list[Floats2d], Callable[[list[Floats2d]], list[Doc]]]:
    if not any(len(doc) for doc in docs):
        # spacy-transformers' pooling fails on a batch without a single token (`nlp("")`);
        # spaCy's tagger skips such a batch in the same way.
        n_tags = len(model.attrs[TAGS_ATTR])
        return [model.ops.alloc2f(0, n_tags) for _ in docs], lambda d_scores: []
    xp = model.ops.xp
    tok2vec = model.layers[0]
    n_in, scale = model.get_dim("nI"), architecture_of(model).settings.head_lr_scale
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
    outside = outside_index(model.attrs[TAGS_ATTR])
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
    sources = head_rows(model.attrs[TAGS_ATTR], tags, below_outside=below_outside)
    if sources is None:
        return model
    scale = architecture_of(model).settings.head_lr_scale
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
    model.attrs[TAGS_ATTR] = list(tags)
    return model
