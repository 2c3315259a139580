"""Teacher distributions carried by training examples, for `bert_ner`'s distillation loss.

A reader (`spacy_bert_ner.TeacherRuns.v1`) puts on each example's reference doc the averaged
tag distribution of the teachers for every token; `BertNER.get_loss` finds it there and
mixes the KL divergence from it with the gold loss (`losses.distillation_loss`). It lives in
`Doc.user_data`, which `Doc.copy` deep-copies, so it survives the copy of every example that
`Language.update` makes, and the Example API needs no new field.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from spacy.tokens import Doc
from spacy.training import Example

from ..errors import BertNERError, check_above_zero, check_fraction
from .gold import excerpt
from .losses import distillation_loss, log_probabilities, token_cross_entropy, tutor_columns

#: The `Doc.user_data` key of a reference doc's teacher distributions.
TEACHER_KEY = "bert_ner_teacher"


@dataclass(frozen=True)
class Distillation:
    """How the loss weighs the teachers (the pipe's `distill_weight` and
    `distill_temperature`, see `losses.distillation_loss`): training-time choices, checked
    when the pipe is created, and kept out of the saved cfg, so a loaded pipeline takes them
    from its config."""

    weight: float
    temperature: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", check_fraction("distill_weight", self.weight))
        temperature = check_above_zero("distill_temperature", self.temperature)
        object.__setattr__(self, "temperature", temperature)


@dataclass(frozen=True)
class TeacherTargets:
    """A batch's teacher distributions: one row per token of the batch's predicted docs, in
    the order of the examples, and the column in the student's head of each teacher tag."""

    probs: np.ndarray  # (n_tokens, n_teacher_tags)
    columns: list[int]


def attach_teacher(doc: Doc, tags: Sequence[str], probs: np.ndarray) -> None:
    """Give `doc` the teachers' distributions over `tags`, one row per token."""
    if probs.shape != (len(doc), len(tags)):
        raise BertNERError(
            f"teacher distributions of shape {probs.shape} for a doc of {len(doc)} tokens and "
            f"{len(tags)} tags ({excerpt(doc)!r})"
        )
    doc.user_data[TEACHER_KEY] = {"tags": list(tags), "probs": probs}


def teacher_targets(
    examples: Sequence[Example], head_tags: Sequence[str], name: str
) -> TeacherTargets | None:
    """The batch's teacher distributions, None when no example carries any.

    A batch mixing examples with and without them is refused: the loss would mix two means,
    and such a mix comes only from a training corpus that joins two readers by mistake.
    """
    found = [eg.reference.user_data.get(TEACHER_KEY) for eg in examples]
    if all(teacher is None for teacher in found):
        return None
    rows = []
    tags = None
    for eg, teacher in zip(examples, found, strict=True):
        if teacher is None:
            raise BertNERError(
                f"{name}: the training example {excerpt(eg.reference)!r} has no teacher "
                "distributions but others of its batch do; train on one reader's examples"
            )
        if tags is not None and teacher["tags"] != tags:
            raise BertNERError(
                f"{name}: the teacher distributions of one batch are over different tags "
                f"({tags} and {teacher['tags']})"
            )
        tags = teacher["tags"]
        if len(teacher["probs"]) != len(eg.predicted):
            raise BertNERError(
                f"{name}: the teacher distributions of {excerpt(eg.reference)!r} cover "
                f"{len(teacher['probs'])} tokens, its predicted doc has {len(eg.predicted)}; "
                "distillation needs the reference's tokens in the predicted doc"
            )
        rows.append(teacher["probs"])
    assert tags is not None
    return TeacherTargets(
        np.concatenate(rows), tutor_columns(head_tags, tags, name, operation="distillation")
    )


def gold_and_teacher_loss(
    examples: Sequence[Example],
    logits: Any,
    targets: Any,
    head_tags: Sequence[str],
    distillation: Distillation,
    name: str,
    xp: Any,
) -> tuple[float, Any]:
    """`BertNER.get_loss`'s loss and gradient for the batch's stacked logits and gold targets:
    the token cross-entropy, or the distillation loss as `distillation` says where the
    examples carry teacher distributions."""
    teacher = teacher_targets(examples, head_tags, name)
    if teacher is None:
        return token_cross_entropy(logits, targets, xp)
    teacher_log_probs = log_probabilities(xp.asarray(teacher.probs), xp)
    columns = xp.asarray(teacher.columns)
    return distillation_loss(
        logits,
        targets,
        teacher_log_probs,
        columns,
        distillation.weight,
        xp,
        temperature=distillation.temperature,
    )
