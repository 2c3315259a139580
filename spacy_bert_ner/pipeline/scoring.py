"""The scores `spacy train` and `nlp.evaluate` report for `bert_ner`."""

from collections.abc import Callable, Iterable
from typing import Any

from spacy.scorer import Scorer, get_ner_prf
from spacy.training import Example
from spacy.util import registry

SCORER = "spacy_bert_ner.scorer.v1"


def score_entities(
    examples: Iterable[Example], *, spans_key: str | None = None, **_: Any
) -> dict[str, Any]:
    """spaCy's NER figures for `doc.ents`, or span figures for `doc.spans[spans_key]`.

    A module-level function, as spaCy's own scorers are: the pipe holds it, and a pipe that
    holds a local function cannot be pickled (`nlp.pipe(n_process=...)` under the spawn start
    method, joblib, Ray).
    """
    if spans_key is None:
        return get_ner_prf(examples)
    return Scorer.score_spans(
        examples,
        f"spans_{spans_key}",
        getter=lambda doc, attr: doc.spans.get(spans_key, []),
        has_annotation=lambda doc: spans_key in doc.spans,
    )


@registry.scorers(SCORER)
def make_scorer() -> Callable[..., dict[str, Any]]:
    """`score_entities`, under the name a config's `scorer` block gives."""
    return score_entities
