"""Rehearsal: the loss that pulls a model being trained on new data toward a frozen copy of
itself, so that what it knew is not forgotten (spaCy's `nlp.resume_training()` and
`Language.rehearse`).

The copy is the tutor: its tag distributions on the examples' texts are the targets (the
examples' annotations are not read), compared over the tutor's tags by `losses.rehearsal_kl`.
"""

from collections.abc import Sequence

import torch
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model
from thinc.types import Floats2d

from ..errors import BertNERError
from ..models.model_api import architecture, current_tags
from ..models.rows import split_rows
from .losses import rehearsal_kl, tutor_columns


def rehearsal_tutor(
    model: Model[list[Doc], list[Floats2d]],
    tutor: Model[list[Doc], list[Floats2d]] | None,
    name: str,
) -> Model[list[Doc], list[Floats2d]]:
    """The frozen copy component `name` rehearses its `model` against, or why it cannot."""
    if not architecture(model).has_own_model:
        # The frozen copy's listener is no transformer's listener: it would read zeros.
        raise BertNERError(
            f"{name}: rehearsal needs the standalone architecture "
            "(spacy_bert_ner.TokenClassifier.v1); a transformer listener cannot keep a "
            "frozen copy of the shared encoder. Use nlp.replace_listeners first"
        )
    if tutor is None:
        raise BertNERError(
            f"{name}: nothing to rehearse against; call nlp.resume_training() first "
            "(spacy train does for a sourced component), which keeps a copy of the model"
        )
    return tutor


def rehearsal_loss(
    tutor: Model[list[Doc], list[Floats2d]],
    head_tags: Sequence[str],
    name: str,
    examples: Sequence[Example],
    scores: list[Floats2d],
) -> tuple[float, list[Floats2d]]:
    """`rehearsal_kl` of the model's `scores` on the examples' predicted docs (its head
    predicting `head_tags`) from the tutor's, and its gradient per doc; component `name`
    is named in the errors."""
    with torch.inference_mode():
        tutor_scores = tutor.predict([eg.predicted for eg in examples])
    columns = tutor_columns(head_tags, current_tags(tutor), name)
    xp = tutor.ops.xp
    loss, d_logits = rehearsal_kl(
        xp.concatenate(scores), xp.concatenate(tutor_scores), xp.asarray(columns), xp
    )
    return loss, split_rows(d_logits, [len(s) for s in scores])
