"""A displaCy page of the sentences where predicted and gold entities differ."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy import displacy
from spacy.tokens import Doc, Span

from ..io import atomic_path
from .scores import check_pairs

# displaCy colours OntoNotes labels only; give CoNLL's PER and MISC their PERSON/NORP colours.
DISPLACY_OPTIONS = {"colors": {"PER": "#aa9cfc", "MISC": "#c887fb"}}


def _units(doc: Doc) -> list[Span]:
    """Sentences when the doc has sentence boundaries, else the whole doc as one span."""
    if doc.has_annotation("SENT_START"):
        return list(doc.sents)
    return [doc[:]]


def _manual_ents(doc: Doc, start: int, end: int) -> list[dict[str, Any]]:
    """displaCy's manual entities of `doc` in tokens [start, end), char offsets relative to
    `start` and clipped to the range (a prediction may run across a gold sentence boundary)."""
    base = doc[start].idx
    ents = []
    for ent in doc.ents:
        if ent.end <= start or ent.start >= end:
            continue
        span = doc[max(ent.start, start) : min(ent.end, end)]
        ents.append(
            {"start": span.start_char - base, "end": span.end_char - base, "label": ent.label_}
        )
    return ents


def write_error_page(
    gold_docs: Sequence[Doc],
    pred_docs: Sequence[Doc],
    path: Path | str,
    max_examples: int = 50,
) -> Path:
    """Write a displaCy page of the first `max_examples` sentences whose entities differ.

    Sentences come from the gold docs' sentence starts (whole docs when they have none); each
    is rendered twice, titled "gold ..." then "predicted ...", with doc and sentence numbers.
    """
    check_pairs(gold_docs, pred_docs)
    parsed: list[dict[str, Any]] = []
    n_examples = 0
    for doc_i, (gold, pred) in enumerate(zip(gold_docs, pred_docs, strict=True)):
        for sent_i, sent in enumerate(_units(gold)):
            if n_examples >= max_examples:
                break
            if len(sent) == 0:
                continue
            gold_ents = _manual_ents(gold, sent.start, sent.end)
            pred_ents = _manual_ents(pred, sent.start, sent.end)
            if gold_ents == pred_ents:
                continue
            n_examples += 1
            where = f"doc {doc_i}, sentence {sent_i}"
            parsed.append({"text": sent.text, "ents": gold_ents, "title": f"gold ({where})"})
            pred_text = pred[sent.start : sent.end].text
            parsed.append({"text": pred_text, "ents": pred_ents, "title": f"predicted ({where})"})
    if not parsed:
        text = "Gold and predicted entities agree everywhere."
        parsed.append({"text": text, "ents": [], "title": "no gold/predicted differences"})
    html = displacy.render(
        parsed, style="ent", page=True, manual=True, jupyter=False, options=DISPLACY_OPTIONS
    )
    path = Path(path)
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(html, encoding="utf8")
    return path
