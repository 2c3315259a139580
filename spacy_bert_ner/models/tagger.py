"""A softmax output layer that learns faster than the encoder under it, for spaCy's tagger.

In a multi-task pipeline spaCy's `tagger` (`spacy.Tagger.v2`) puts a new softmax layer over the
shared transformer, and the run's one learning rate suits the pretrained encoder (5e-5), not a
layer that starts from zeros: at cpu.cfg's 2-epoch budget the tagger reached 77.8% tag accuracy
on CoNLL-2003 test. bert_ner's own heads solve the same problem with `head_lr_scale`, and this
layer does it the way `listener_classifier` does: it stores its weights divided by the scale
and multiplies them back in forward, so each of Adam's steps (the same size whatever the
gradient's scale) moves the effective weights `head_lr_scale` times further.

Everything else is thinc's `Softmax.v2` as spaCy's tagger builds it: zero-initialised, logits
out at inference unless `normalize`, probabilities in training (spaCy's tagger loss takes
`probabilities - truth` as the gradient of the logits).
"""

from collections.abc import Callable
from typing import cast

from thinc.api import Model
from thinc.types import Floats1d, Floats2d
from thinc.util import get_width

#: The thinc model's name.
MODEL_NAME = "scaled_softmax"


def forward(model: Model, X: Floats2d, is_train: bool) -> tuple[Floats2d, Callable]:
    scale = model.attrs["head_lr_scale"]
    weights = cast(Floats2d, model.get_param("W") * scale)
    bias = cast(Floats1d, model.get_param("b") * scale)
    Y = model.ops.affine(X, weights, bias)
    if not (model.attrs["normalize"] or is_train):
        return Y, _no_backprop
    Y = model.ops.softmax(Y)

    def backprop(dY: Floats2d) -> Floats2d:
        model.inc_grad("b", dY.sum(axis=0) * scale)
        model.inc_grad("W", model.ops.gemm(dY, X, trans1=True) * scale)
        return model.ops.gemm(dY, weights)

    return Y, backprop


def _no_backprop(dY: Floats2d) -> Floats2d:
    raise ValueError("backprop is not supported for an unnormalized softmax layer")


def init(model: Model, X: Floats2d | None = None, Y: Floats2d | None = None) -> None:
    """Size the layer from samples, as thinc's Softmax does; zeros need no scaling."""
    if X is not None and not model.has_dim("nI"):
        model.set_dim("nI", get_width(X))
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", get_width(Y))
    model.set_param("W", model.ops.alloc2f(model.get_dim("nO"), model.get_dim("nI")))
    model.set_param("b", model.ops.alloc1f(model.get_dim("nO")))
