"""The scores `spacy train` and `nlp.evaluate` report for `bert_ner`."""

from collections.abc import Callable, Iterable
from typing import Any

from spacy.scorer import Scorer, get_ner_prf
from spacy.training import Example
from spacy.util import registry

SCORER = "spacy_bert_ner.scorer.v1"

#: `Doc.user_data` key of a reference doc held out to check what a fine-tuning run forgets:
#: {"start_f": the pipeline's entity F1 on the held-out docs before the run,
#: "max_forgetting": the F1 the run may lose on them}. Written by `adapt`.
RETENTION = "spacy_bert_ner.retention"


def score_entities(
    examples: Iterable[Example], *, spans_key: str | None = None, **_: Any
) -> dict[str, Any]:
    """spaCy's NER figures for `doc.ents`, or span figures for `doc.spans[spans_key]`.

    A module-level function, as spaCy's own scorers are: the pipe holds it, and a pipe that
    holds a local function cannot be pickled (`nlp.pipe(n_process=...)` under the spawn start
    method, joblib, Ray).
    """
    if spans_key is None:
        return retention_guarded(list(examples))
    return Scorer.score_spans(
        examples,
        f"spans_{spans_key}",
        getter=lambda doc, attr: doc.spans.get(spans_key, []),
        has_annotation=lambda doc: spans_key in doc.spans,
    )


def retention_guarded(examples: list[Example]) -> dict[str, Any]:
    """NER figures of the examples, those held out for retention (marked `RETENTION`) scored
    apart.

    With held-out examples present, `ents_*` cover the others only (the in-domain dev set) and
    two keys are added: `retention_f`, the entity F1 on the held-out ones, and
    `guarded_ents_f`, which `spacy train` can rank checkpoints by: the in-domain F1 while
    `retention_f` is within `max_forgetting` of `start_f`, else `retention_f - 1`, below every
    checkpoint that kept its old domain, and highest for the one that forgot least. A run
    ranked by in-domain F1 alone can keep a checkpoint that has lost the old domain, and
    nothing in its scores says so.
    """
    held = [eg for eg in examples if RETENTION in eg.reference.user_data]
    if not held:
        return get_ner_prf(examples)
    scores = get_ner_prf([eg for eg in examples if RETENTION not in eg.reference.user_data])
    guard = held[0].reference.user_data[RETENTION]
    kept = float(get_ner_prf(held)["ents_f"] or 0.0)
    scores["retention_f"] = kept
    within = kept >= guard["start_f"] - guard["max_forgetting"]
    scores["guarded_ents_f"] = float(scores["ents_f"] or 0.0) if within else kept - 1.0
    return scores


@registry.scorers(SCORER)
def make_scorer() -> Callable[..., dict[str, Any]]:
    """`score_entities`, under the name a config's `scorer` block gives."""
    return score_entities
