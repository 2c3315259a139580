"""Tag log-probabilities to entities, and where they go: `doc.ents` or a `doc.spans` group.

The last steps of the data path. Entity confidences are kept where spaCy users look for them:
the `Span` extension `span._.bert_ner_score` (the probability, under the model's tag
distributions and the decoding lattice, that exactly this span carries exactly this label;
see `posteriors`; None for entities this component did not predict), and, for a span
group, also `SpanGroup.attrs["scores"]`, one score per span as spaCy's `spancat` keeps them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from spacy.tokens import Doc, Span, SpanGroup

from ..posteriors import posteriors
from ..tags import TagScheme

SCORE_EXTENSION = "bert_ner_score"
#: Key of a span group's scores, aligned with its spans (spaCy's `spancat` convention).
SCORES_ATTR = "scores"


def install_extensions() -> None:
    """Register `span._.bert_ner_score` (once; a pipeline loaded twice shares it)."""
    if not Span.has_extension(SCORE_EXTENSION):
        Span.set_extension(SCORE_EXTENSION, getter=entity_score)


def entity_score(span: Span) -> float | None:
    """bert_ner's score of `span`: None unless bert_ner predicted these offsets with this label.

    Kept in `doc.user_data` (so DocBin's `store_user_data` and `nlp.pipe(n_process=...)`
    carry it) under the offsets and the label. spaCy keys a span extension's value by the
    offsets alone, so an entity that a later component relabels (an `entity_ruler` with
    `overwrite_ents`) would report bert_ner's score of another entity.
    """
    return _user_data(span.doc).get(_score_key(span))


def _score_key(span: Span) -> tuple[str, int, int, str]:
    return (SCORE_EXTENSION, span.start_char, span.end_char, span.label_)


def _user_data(doc: Doc) -> dict[Any, Any]:
    # spaCy's stubs say str keys; its own extension values are kept under tuples too.
    return cast(dict[Any, Any], doc.user_data)


@dataclass(frozen=True)
class DecodedDoc:
    """A doc's decoded entities with their probabilities, and per token P(outside any)."""

    entities: list[tuple[Span, float]]
    outside_probs: np.ndarray


def decode_entities(
    docs: Sequence[Doc], log_probs: Sequence[np.ndarray], scheme: TagScheme
) -> list[DecodedDoc]:
    """The well-formed entities of each doc from its tokens' tag log-probabilities, each
    scored with its posterior probability (`posteriors`), computed for the batch at once.
    Windows cross sentences for context, but entities stay inside one."""
    sent_starts = [
        doc.to_array("SENT_START") == 1 if doc.has_annotation("SENT_START") else None
        for doc in docs
    ]
    found = [
        [(start, end, label) for start, end, label, _ in scheme.entities(
            scheme.decode(doc_log_probs, starts), segment_starts=starts)]
        for doc_log_probs, starts in zip(log_probs, sent_starts, strict=True)
    ]  # fmt: skip
    figures = posteriors(scheme, log_probs, found, sent_starts)
    return [
        DecodedDoc(
            [
                (Span(doc, start, end, label=label), float(prob))
                for (start, end, label), prob in zip(spans, doc_figures.span_probs, strict=True)
            ],
            doc_figures.outside_probs,
        )
        for doc, spans, doc_figures in zip(docs, found, figures, strict=True)
    ]


def write_entities(
    doc: Doc,
    scored: Sequence[tuple[Span, float]],
    *,
    spans_key: str | None,
    overwrite: bool,
) -> None:
    """Put the `scored` spans where the config says, each with its score.

    With `overwrite`, they replace what the doc had; else the doc's own entities are kept
    and only predictions that overlap none of them are added (as spaCy's `ner` does with
    `incorrect_spans_key` unset), and a span group keeps its spans and gets these appended.
    """
    if spans_key is not None:
        written = _write_span_group(doc, scored, spans_key, overwrite)
    else:
        written = _write_ents(doc, [span for span, _ in scored], overwrite)
    score_of = {(span.start, span.end): score for span, score in scored}
    for span in written:  # only spans really written get a score
        _user_data(doc)[_score_key(span)] = score_of[span.start, span.end]


def _write_span_group(
    doc: Doc, scored: Sequence[tuple[Span, float]], key: str, overwrite: bool
) -> list[Span]:
    spans = [span for span, _ in scored]
    scores = [score for _, score in scored]
    old = doc.spans.get(key) if not overwrite else None
    if old is not None:
        old_scores = old.attrs.get(SCORES_ATTR)
        if old_scores is None or len(old_scores) != len(old):
            old_scores = [span._.get(SCORE_EXTENSION) for span in old]
        spans = [*old, *spans]
        scores = [*(np.nan if s is None else s for s in old_scores), *scores]
    doc.spans[key] = SpanGroup(
        doc, name=key, spans=spans, attrs={SCORES_ATTR: np.asarray(scores, dtype="float32")}
    )
    return spans[len(spans) - len(scored) :]


def _write_ents(doc: Doc, spans: list[Span], overwrite: bool) -> list[Span]:
    if overwrite:
        doc.set_ents(spans, default="outside")
        return spans
    taken = np.zeros(len(doc), dtype=bool)
    for ent in doc.ents:
        taken[ent.start : ent.end] = True
    free = [span for span in spans if not taken[span.start : span.end].any()]
    for span in free:
        taken[span.start : span.end] = True
    # Every token has been labelled: those without any annotation yet become "O".
    unlabelled = (doc.to_array("ENT_IOB") == 0) & ~taken
    doc.set_ents(free, outside=_runs(doc, unlabelled), default="unmodified")
    return free


def _runs(doc: Doc, mask: np.ndarray) -> list[Span]:
    """The spans of consecutive tokens where `mask` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [doc[start:end] for start, end in zip(edges[::2], edges[1::2], strict=True)]
