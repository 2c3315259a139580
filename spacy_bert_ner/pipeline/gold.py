"""Training gold as `bert_ner` reads it, and the gold entities it cannot learn.

spaCy aligns each gold doc to the predicted doc's tokens (`Example.get_aligned_ner`). An
entity whose edge falls inside a predicted token, or whose label the head does not predict,
cannot become token targets; `GoldChecker` stops on it with the doc, entity and characters
named (`on_bad_gold = "error"`) or leaves it out of the loss and logs it once (`"skip"`).
"""

import logging
from collections.abc import Iterable, Sequence

import numpy as np
from spacy.tokens import Doc, Span
from spacy.training import Example

from ..errors import BertNERError

logger = logging.getLogger("spacy.bert_ner")

BAD_GOLD_ACTIONS = ("error", "skip")


def labels_in(examples: Iterable[Example], spans_key: str | None) -> set[str]:
    """The entity types of the examples' gold (`doc.ents`, or the `spans_key` group)."""
    found: set[str] = set()
    for eg in examples:
        spans = eg.reference.spans.get(spans_key, []) if spans_key else eg.reference.ents
        found.update(span.label_ for span in spans)
    return found


def gold_view(example: Example, spans_key: str | None, index: int | None = None) -> Example:
    """The example as training reads it, through `get_aligned_ner`.

    Its gold labels are made known to the predicted doc's vocab, where spaCy's alignment
    looks them up (a reference doc from another vocab failed there). With `spans_key`,
    the gold is the reference's `doc.spans[spans_key]`, put in `doc.ents` (one tag per
    token, so the spans must not overlap). `index` (the example's place in the corpus) goes
    into error messages.
    """
    ref = example.reference
    strings = example.predicted.vocab.strings
    for span in ref.spans.get(spans_key, []) if spans_key else ref.ents:
        strings.add(span.label_)
    if spans_key is None:
        return example
    gold = ref.copy()
    gold.set_ents([], default="missing")  # unannotated unless the doc has the span group
    if spans_key in ref.spans:
        spans = sorted(ref.spans[spans_key], key=lambda span: (span.start, span.end))
        for before, after in zip(spans, spans[1:], strict=False):
            if after.start < before.end:
                where = f"training example {index}, " if index is not None else ""
                raise BertNERError(
                    f"bert_ner: gold spans {before.text!r} ({before.label_}) and "
                    f"{after.text!r} ({after.label_}) of doc.spans[{spans_key!r}] overlap "
                    f"({where}doc {excerpt(ref)!r}); a token classifier learns one "
                    "entity per token: keep one of them"
                )
        gold.set_ents([Span(gold, s.start, s.end, label=s.label) for s in spans])
    return Example(example.predicted, gold)


class GoldChecker:
    """Raises for, or logs and counts once, the gold entities a component cannot learn."""

    def __init__(self, action: str) -> None:
        if action not in BAD_GOLD_ACTIONS:
            raise BertNERError(
                f"bert_ner: on_bad_gold must be one of {BAD_GOLD_ACTIONS}, not {action!r}"
            )
        self.action = action
        # Bad gold entities already warned about (with "skip"), so each is logged and
        # counted once however many epochs see it.
        self.skipped: set[tuple[int, int, int, str]] = set()

    def check_all(
        self, examples: Iterable[Example], spans_key: str | None, labels: Sequence[str]
    ) -> None:
        """`check` every training example (numbered in the messages), before training."""
        for index, example in enumerate(examples):
            gold = gold_view(example, spans_key, index)
            self.check(gold, gold.get_aligned_ner(), labels, index)

    def check(
        self,
        example: Example,
        biluo: Sequence[str | None],
        labels: Sequence[str],
        index: int | None = None,
    ) -> None:
        """Check `example` (as `gold_view` gives it) against the component's `labels`;
        `biluo` is its `get_aligned_ner()`, which marks the bad tokens None."""
        for entity, problem in bad_gold_entities(example, biluo, labels):
            ref = example.reference
            where = f"training example {index}, " if index is not None else ""
            what = (
                f"gold entity {entity.text!r} ({entity.label_}, {where}doc {excerpt(ref)!r}, "
                f"characters {entity.start_char}-{entity.end_char}) {problem}"
            )
            if self.action == "error":
                fix = (
                    "call add_label() before training, or initialize with labels that include "
                    "it ([initialize.components.bert_ner] labels); "
                    if entity.label_ not in labels
                    else "fix the gold spans or the tokenization; "
                )
                raise BertNERError(
                    f"bert_ner: {what}. To train anyway, {fix}or set [components.bert_ner] "
                    'on_bad_gold = "skip" (in the config.cfg of a sourced pipeline) to leave '
                    "such entities out of the loss"
                )
            key = (hash(ref.text), entity.start_char, entity.end_char, entity.label_)
            if key in self.skipped:
                continue
            self.skipped.add(key)
            count = len(self.skipped)
            # A corpus trained on a deliberate subset of its labels skips thousands: warn
            # for the first ten, then at 100, 1000, ...; the rest go to the debug log.
            loud = count <= 10 or str(count).rstrip("0") == "1"
            logger.log(
                logging.WARNING if loud else logging.DEBUG,
                "bert_ner: left out of the loss: %s (%d bad gold entities skipped so far)",
                what,
                count,
            )


def bad_gold_entities(
    example: Example, biluo: Sequence[str | None], labels: Iterable[str]
) -> list[tuple[Span, str]]:
    """Gold entities of `example` that training cannot learn, each with what is wrong.

    `biluo` is `example.get_aligned_ner()`. spaCy gives None to the predicted tokens of an
    entity whose edges fall inside a predicted token, as it does to unannotated tokens; a
    None token whose reference tokens belong to an entity tells the two apart.
    """
    ref = example.reference
    known = set(labels)
    found: dict[tuple[int, int], tuple[Span, str]] = {}
    for i in np.flatnonzero([tag is None for tag in biluo]).tolist():
        for j in example.alignment.x2y[i].tolist():
            if ref[j].ent_iob_ not in ("B", "I"):
                continue
            entity = next(ent for ent in ref.ents if ent.start <= j < ent.end)
            if (entity.start, entity.end) not in found:
                x_tokens = dict.fromkeys(example.alignment.y2x[entity.start : entity.end].tolist())
                tokens = [example.predicted[k].text for k in x_tokens]
                found[entity.start, entity.end] = (
                    entity,
                    f"does not align with the predicted tokens {tokens!r}: an edge falls "
                    "inside a token",
                )
    for entity in ref.ents:
        if entity.label_ not in known and (entity.start, entity.end) not in found:
            found[entity.start, entity.end] = (
                entity,
                f"has a label this component does not predict (its labels: "
                f"{', '.join(sorted(known)) or 'none'})",
            )
    return [found[key] for key in sorted(found)]


def excerpt(doc: Doc, limit: int = 60) -> str:
    text = " ".join(doc.text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
