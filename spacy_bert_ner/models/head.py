"""The classification head and the input embeddings bert_ner gives a Hugging Face encoder.

A model's tag set lives in its config's `id2label`; growing or replacing it (`resize_head`)
keeps the trained rows of the tags that stay, so a fine-tuned model can learn new entity types
without losing the old ones; `head_rows` is that rule, which the listener's head follows too.
Case embeddings (`add_case_embeddings`) repurpose the token type table. Both leave a plain
Hugging Face model, saved and loaded as any other.
"""

import logging
from collections.abc import Sequence
from typing import NamedTuple

import torch
from transformers import PretrainedConfig, PreTrainedModel

from ..errors import ModelLoadError
from .windows import N_CASE_CLASSES

logger = logging.getLogger("spacy.bert_ner")

#: Set in a Hugging Face config (saved in its config.json) when its token type embeddings
#: were turned into case embeddings, so a saved model says itself how it must be fed.
CASE_CLASSES_KEY = "bert_ner_case_classes"
#: How far under the "O" logit the pipe's `add_label` starts a new tag (`head_rows`'s
#: `below_outside`). Entities never change (any margin > 0 guarantees it); each new tag gets
#: e^-5 (0.7%) of O's probability, so an entity's confidence shrinks by a factor
#: 1 + n_new_tags * 0.0067 * p(O) at most (under 0.2% where p(O) < 0.1). The rows climb the
#: margin in a few dozen updates; a larger one costs more steps before the type can be
#: predicted at all.
NEW_TAG_MARGIN = 5.0


def tag_names(config: PretrainedConfig) -> list[str]:
    return [config.id2label[i] for i in range(config.num_labels)]


def outside_index(tags: Sequence[str]) -> int:
    """The row of "O" in a head predicting `tags` (row 0 for a head without one)."""
    return list(tags).index("O") if "O" in tags else 0


def is_token_classifier(config: PretrainedConfig) -> bool:
    return any(a.endswith("ForTokenClassification") for a in config.architectures or [])


class RowSource(NamedTuple):
    """Where one row of a resized head starts: the old head's row `row`, its bias lowered by
    `bias_offset`."""

    row: int
    bias_offset: float = 0.0


def head_rows(
    old_tags: Sequence[str], tags: Sequence[str], *, below_outside: float | None = None
) -> list[RowSource | None] | None:
    """The rule every head is resized by, both architectures' alike: for each of `tags`, in
    that order, the old head's row it starts from, or None for a freshly initialised row.
    None instead of a list when the head already predicts `tags` in that order: then it is
    left untouched, not rebuilt.

    A tag the head has keeps its trained row bit for bit, wherever it moves: a reorder (the
    same tags in another order) keeps every row and only permutes them, so the model predicts
    exactly what it did; the head always ends with `tags` in the order asked. Whether a head
    whose entity types already match needs resizing at all is the pipe's question
    (`tags.tags_for_head`), not this one's.

    A new tag gets a fresh row, or, with `below_outside`, a copy of the "O" row whose bias is
    lowered by that margin. Then every new tag's logit sits `below_outside` under O's on every
    token, so the decoder never prefers one (a run of new tags always loses to O in its place,
    which every scheme allows): a trained model's entities stay as they were until training
    moves the new rows. The copy starts a new type where the old model put what it was never
    taught to tag, on the O side; a random row would start it nowhere in particular, and a
    bias low enough to make that safe would take many steps to climb.
    """
    old_tags = list(old_tags)
    if old_tags == list(tags):
        return None
    fresh = None if below_outside is None else RowSource(outside_index(old_tags), below_outside)
    sources = [RowSource(old_tags.index(tag)) if tag in old_tags else fresh for tag in tags]
    kept = [tag for tag in tags if tag in old_tags]
    new = [tag for tag in tags if tag not in old_tags]
    logger.info(
        "bert_ner: new classification head with %d tags; kept the trained rows of %d (%s), "
        "%s %d (%s)",
        len(tags),
        len(kept),
        ", ".join(kept) or "none",
        "initialised" if below_outside is None else f"started {below_outside} under O",
        len(new),
        ", ".join(new) or "none",
    )
    return sources


def resize_head(
    hf_model: PreTrainedModel, tags: Sequence[str], *, below_outside: float | None = None
) -> bool:
    """Give a loaded classifier the tags `tags` by `head_rows`'s rule (which says why): rows
    of the tags it has are kept (a reorder moves them), new ones start under "O" with
    `below_outside`, else from Hugging Face's initialisation. Returns whether the head
    changed."""
    sources = head_rows(tag_names(hf_model.config), tags, below_outside=below_outside)
    if sources is None:
        return False
    old_head = _classifier_layer(hf_model)
    new_head = torch.nn.Linear(old_head.in_features, len(tags)).to(old_head.weight.device)
    hf_model._init_weights(new_head)
    with torch.no_grad():
        for i, source in enumerate(sources):
            if source is not None:
                new_head.weight[i] = old_head.weight[source.row]
                new_head.bias[i] = old_head.bias[source.row] - source.bias_offset
    hf_model.classifier = new_head
    _set_tags(hf_model.config, tags)
    hf_model.num_labels = len(tags)  # type: ignore[assignment]
    return True


def _set_tags(config: PretrainedConfig, tags: Sequence[str]) -> None:
    config.id2label = dict(enumerate(tags))
    config.label2id = {tag: i for i, tag in enumerate(tags)}
    config.num_labels = len(tags)
    config.architectures = [f"{type(config).__name__.replace('Config', '')}ForTokenClassification"]


def _classifier_layer(hf_model: PreTrainedModel) -> torch.nn.Linear:
    head = getattr(hf_model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise ModelLoadError(
            f"{type(hf_model).__name__} keeps its head elsewhere than a Linear `classifier`; "
            "bert_ner cannot change its labels"
        )
    return head


def uses_case(hf_model: PreTrainedModel) -> bool:
    return bool(getattr(hf_model.config, CASE_CLASSES_KEY, 0))


def add_case_embeddings(hf_model: PreTrainedModel) -> None:
    """Turn the encoder's token type embeddings into one row per letter-case class.

    BERT-style encoders add a token type embedding to every piece; NER runs one segment, so
    that table is free to carry the case of each piece's word instead (`windows.case_classes`).
    Every row starts as a copy of row 0, the one the encoder was trained with, so the model
    computes exactly what it did until training tells the classes apart. The result stays a
    plain Hugging Face model (`type_vocab_size` grows), saved and loaded as any other.
    """
    if uses_case(hf_model):
        return
    embeddings = getattr(hf_model.base_model, "embeddings", None)
    old = getattr(embeddings, "token_type_embeddings", None)
    if embeddings is None or not isinstance(old, torch.nn.Embedding):
        raise ModelLoadError(
            f"case_feature = true needs an encoder with token type embeddings (BERT-style); "
            f"{type(hf_model).__name__} has none: set case_feature = false"
        )
    new = torch.nn.Embedding(N_CASE_CLASSES, old.embedding_dim).to(old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight[:1].expand(N_CASE_CLASSES, -1))
    embeddings.token_type_embeddings = new
    # BERT keeps a zero token_type_ids buffer sized by position; it stays valid (class 0).
    hf_model.config.type_vocab_size = N_CASE_CLASSES
    setattr(hf_model.config, CASE_CLASSES_KEY, N_CASE_CLASSES)
    logger.info("bert_ner: added case embeddings (%d classes) to the encoder", N_CASE_CLASSES)
