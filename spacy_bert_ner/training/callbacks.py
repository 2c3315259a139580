"""Continue training a trained `bert_ner` under `spacy train`: new entity types, rehearsal.

`spacy train` with a sourced component calls `nlp.resume_training()`, which keeps the copy of
the model that `BertNER.rehearse` pulls toward, but spaCy 3.8's training loop never calls
`rehearse`, and a sourced component is not initialized, so the entity types of the new data
never reach its head. Two registered callbacks fill those gaps from the config:

    [initialize.before_init]
    @callbacks = "spacy_bert_ner.add_labels.v1"
    labels = ["MISC"]

    [training.before_update]
    @callbacks = "spacy_bert_ner.rehearse.v1"
    words_per_step = 464

    [training.before_update.corpus]
    @readers = "spacy_bert_ner.SentenceRuns.v1"
    path = "corpus/old-train.spacy"

The rehearsal callback runs before each update: it accumulates the rehearsal gradients of a
batch from its own corpus (texts only), and the loop's update adds the new data's to them,
so one optimizer step, with the run's schedules and clipping, applies both.
"""

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from spacy.language import Language
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from spacy.util import registry

from ..errors import BertNERError


@registry.callbacks("spacy_bert_ner.add_labels.v1")
def make_add_labels(
    labels: list[str], component: str = "bert_ner"
) -> Callable[[Language], Language]:
    """An `[initialize.before_init]` callback that adds entity types to `component`.

    On a sourced (trained) component the head grows with the old predictions unchanged
    (see `BertNER.add_label`); on a new one the types join those found in the data.
    """

    def add_labels(nlp: Language) -> Language:
        pipe = nlp.get_pipe(component)
        for label in labels:
            pipe.add_label(label)  # type: ignore[attr-defined]
        return nlp

    return add_labels


@registry.callbacks("spacy_bert_ner.rehearse.v1")
def make_rehearsal(
    corpus: Callable[[Language], Iterable[Example]],
    components: Sequence[str] = ("bert_ner",),
    words_per_step: int = 464,
    seed: int = 0,
) -> Callable[[Language, dict[str, Any]], None]:
    """A `[training.before_update]` callback: one rehearsal batch before every update.

    corpus: a reader (e.g. `spacy_bert_ner.SentenceRuns.v1`) of the texts to rehearse on,
        typically what the old model was trained on; its annotations are not used. It is
        read once, on the first step, and cycled through in a new order each pass.
    components: the pipes to rehearse; each must have a rehearsal model (be sourced).
    words_per_step: words per rehearsal batch (the update's batch size is a good choice).
    """
    batches: Iterator[list[Example]] | None = None

    def rehearse(nlp: Language, info: dict[str, Any]) -> None:
        nonlocal batches
        if batches is None:
            batches = cycle_batches(list(corpus(nlp)), words_per_step, seed)
        batch = next(batches)
        for name in components:
            pipe = nlp.get_pipe(name)
            if getattr(pipe, "_rehearsal_model", None) is None:
                raise BertNERError(
                    f"rehearsal: '{name}' has no rehearsal model; source it from a trained "
                    "pipeline ([components.NAME] source = ...) so spacy train resumes it"
                )
            pipe.rehearse(batch, sgd=None)  # type: ignore[attr-defined]

    return rehearse


def cycle_batches(examples: list[Example], words: int, seed: int) -> Iterator[list[Example]]:
    """Batches of about `words` words, endlessly, reshuffled on every pass."""
    if not examples:
        raise BertNERError("rehearsal: the rehearsal corpus holds no examples")
    rng = random.Random(seed)
    while True:
        rng.shuffle(examples)
        yield from minibatch_by_words(examples, size=words, tolerance=0.2)
