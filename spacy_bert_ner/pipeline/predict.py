"""Prediction on gold docs or on texts, for the commands that need more than `nlp.pipe`'s
annotations: a `bert_ner` component's raw scores and decoded entities, or the whole pipeline's
entities on the gold's own tokens.

Calibration, distillation, `select` and active learning read a component's logits (before its
temperature) or its span probabilities, which `nlp.pipe` does not leave on the doc; so they call
`BertNER.predict` themselves. A component that listens to a shared `transformer` reads the
encoding that pipe wrote to the doc, so the pipes before the component must run first: a bare
`predict` would read no encoding at all. `scored_batches` is the one place that does both.

Gold docs are predicted on copies of their own tokens and sentence starts (`unannotated_copy`),
never re-tokenized, so prediction and gold line up token for token; texts are tokenized by the
pipeline.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import minibatch
from thinc.types import Floats2d
from tqdm import tqdm

from ..errors import BertNERError
from .bert_ner import BertNER
from .loading import entity_getter
from .spans import DecodedDoc

#: Docs per `predict` call: configs/cpu.cfg's `nlp.batch_size`.
BATCH_SIZE = 64


def unannotated_copy(nlp: Language, gold: Doc) -> Doc:
    """The gold doc's tokens (and sentence starts, if any) without any entities."""
    sent_starts: list[bool | int | None] | None = (
        [bool(token.is_sent_start) for token in gold] if gold.has_annotation("SENT_START") else None
    )
    return Doc(
        nlp.vocab,
        words=[token.text for token in gold],
        spaces=[bool(token.whitespace_) for token in gold],
        sent_starts=sent_starts,
    )


def _input_doc(nlp: Language, item: Doc | str) -> Doc:
    return unannotated_copy(nlp, item) if isinstance(item, Doc) else nlp.make_doc(item)


@dataclass(frozen=True)
class ScoredBatch:
    """A batch of docs as component `pipe` sees them in its pipeline, and its scores of them:
    per doc, the `(n_tokens, n_tags)` logits `BertNER.predict` returns (model backend)."""

    pipe: BertNER
    docs: list[Doc]
    scores: list[Floats2d]

    def logits(self) -> list[np.ndarray]:
        """The scores as numpy arrays, without the component's temperature."""
        return [self.pipe.model.ops.to_numpy(doc_scores) for doc_scores in self.scores]

    def decoded(self) -> list[DecodedDoc]:
        """Each doc's entities with their span probabilities and its tokens' probabilities of
        lying outside any entity, at the component's temperature (`BertNER.decode`)."""
        return self.pipe.decode(self.docs, self.scores)


def scored_batches(
    nlp: Language, name: str, items: Iterable[Doc | str], batch_size: int = BATCH_SIZE
) -> Iterator[ScoredBatch]:
    """Component `name`'s scores of `items` (gold docs, copied without their annotations, or
    texts), in order, `batch_size` at a time, after the pipes before it have run."""
    pipe = nlp.get_pipe(name)
    if not isinstance(pipe, BertNER):
        raise BertNERError(f"{name}: not a bert_ner component")
    before = nlp.pipe_names[: nlp.pipe_names.index(name)]
    for batch in minibatch(items, batch_size):
        docs = [_input_doc(nlp, item) for item in batch]
        # Per batch, not around the generator: the caller may use the whole pipeline between.
        with nlp.select_pipes(enable=before):
            docs = list(nlp.pipe(docs, batch_size=batch_size))
        yield ScoredBatch(pipe, docs, pipe.predict(docs))


def predict_on_gold(nlp: Language, gold_docs: Sequence[Doc]) -> list[Doc]:
    """The whole pipeline's predictions on copies of the gold docs' own tokens, in order, as
    `doc.ents` wherever the pipeline writes them: a `bert_ner` with a `spans_key` writes
    `doc.spans`, and the gold's entities, which every score compares with, are `doc.ents`."""
    entities = entity_getter(nlp)
    inputs = (unannotated_copy(nlp, gold) for gold in gold_docs)
    predicted = list(tqdm(nlp.pipe(inputs), total=len(gold_docs), unit="doc", desc="predicting"))
    for doc in predicted:
        doc.ents = entities(doc)
    return predicted
