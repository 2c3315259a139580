"""Scores of predicted against gold entities: seqeval (conlleval and strict IOB2) and spaCy.

The headline figure is seqeval's default mode, which reproduces the CoNLL shared task's
`conlleval` script: the number papers report for CoNLL-2003. seqeval's strict IOB2 mode is
shown beside it because the two differ only when a tag sequence is ill-formed (an `I-` that
starts an entity, or one whose type changes mid-span): conlleval repairs such sequences, strict
mode discards the broken entities. Tags taken from spaCy `Doc.ents` are always well-formed IOB2
spans, so the two modes agree on them, and spaCy's own `Scorer.score_spans(..., "ents")`, which
compares exact labelled token spans, must give the same micro P/R/F1 as the conlleval figure.
Reporting all three makes a disagreement, i.e. a bug in tag conversion, visible at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from wasabi import msg

from ..errors import BertNERError

MISSED = "MISSED"

SPURIOUS = "SPURIOUS"

_AVERAGES = ("micro avg", "macro avg", "weighted avg")


def doc_iob2(doc: Doc) -> list[str]:
    """The IOB2 tags of `doc.ents`, one per token; tokens without entity annotation are "O"."""
    tags = []
    for token in doc:
        if token.ent_iob_ in ("B", "I") and token.ent_type_:
            tags.append(f"{token.ent_iob_}-{token.ent_type_}")
        else:
            tags.append("O")
    return tags


def check_pairs(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> None:
    if len(gold_docs) != len(pred_docs):
        raise BertNERError(
            f"{len(gold_docs)} gold docs but {len(pred_docs)} predicted docs: cannot pair them"
        )
    for i, (gold, pred) in enumerate(zip(gold_docs, pred_docs, strict=True)):
        if len(gold) != len(pred):
            raise BertNERError(
                f"doc {i}: gold has {len(gold)} tokens, prediction has {len(pred)}; "
                "predict on the gold tokens"
            )


def _seqeval_mode(y_true: list[list[str]], y_pred: list[list[str]], **mode: Any) -> dict:
    """Micro P/R/F1 and per-type P/R/F1/support from one seqeval classification report."""
    with warnings.catch_warnings():
        # The macro average of an empty report is nan (numpy warns); we don't use it.
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0, **mode)
    micro = report["micro avg"]
    per_type = {
        label: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for label, row in sorted(report.items())
        if label not in _AVERAGES
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "support": int(micro["support"]),
        "per_type": per_type,
    }


def score_docs(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> dict[str, Any]:
    """Entity scores of `pred_docs` against `gold_docs` (paired by position, same tokens).

    One tag sequence per doc goes to seqeval. Returns floats in 0..1:
    {"conlleval": {precision, recall, f1, support, per_type: {LABEL: {precision, recall, f1,
    support}}}, "strict": {same layout}, "spacy": {precision, recall, f1, per_type: {LABEL:
    {precision, recall, f1}}}, "n_docs", "n_tokens"}. spaCy's Scorer reports None when there
    are no gold or predicted entities at all; that is written as 0.0, conlleval's figure.
    When the pipeline also tags (a multi-task pipeline) and the gold has part-of-speech tags,
    "tag_acc" is spaCy's tag accuracy.
    """
    check_pairs(gold_docs, pred_docs)
    y_true = [doc_iob2(doc) for doc in gold_docs]
    y_pred = [doc_iob2(doc) for doc in pred_docs]
    examples = [Example(pred, gold) for gold, pred in zip(gold_docs, pred_docs, strict=True)]
    spacy_scores = Scorer.score_spans(examples, "ents")
    spacy_per_type = {
        label: {"precision": float(s["p"]), "recall": float(s["r"]), "f1": float(s["f"])}
        for label, s in sorted((spacy_scores.get("ents_per_type") or {}).items())
    }
    tagged = all(doc.has_annotation("TAG") for doc in [*gold_docs, *pred_docs])
    tag_scores = {"tag_acc": Scorer.score_token_attr(examples, "tag")["tag_acc"]} if tagged else {}
    return {
        **tag_scores,
        "conlleval": _seqeval_mode(y_true, y_pred),
        "strict": _seqeval_mode(y_true, y_pred, mode="strict", scheme=IOB2),
        "spacy": {
            "precision": float(spacy_scores["ents_p"] or 0.0),
            "recall": float(spacy_scores["ents_r"] or 0.0),
            "f1": float(spacy_scores["ents_f"] or 0.0),
            "per_type": spacy_per_type,
        },
        "n_docs": len(gold_docs),
        "n_tokens": sum(len(doc) for doc in gold_docs),
    }


def entity_confusion(
    gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]
) -> dict[str, dict[str, int]]:
    """Counts of gold entity type (row) against predicted type (column), matched by exact span.

    A gold span and a predicted span match when they cover exactly the same tokens of paired
    docs. A match adds 1 to `[gold label][predicted label]` (the diagonal when the labels
    agree); a gold span that no predicted span matches adds 1 to `[gold label]["MISSED"]`; a
    predicted span that no gold span matches adds 1 to `["SPURIOUS"][predicted label]`. A
    boundary error (gold "Angela Merkel", predicted "Merkel") is therefore one MISSED plus one
    SPURIOUS, as in conlleval, where it costs both a false negative and a false positive.

    Rows: every gold or predicted label (sorted) then "SPURIOUS"; columns: the same labels then
    "MISSED"; absent pairs are 0, so the result is a full matrix (SPURIOUS/MISSED is always 0).
    """
    check_pairs(gold_docs, pred_docs)
    counts: dict[tuple[str, str], int] = {}
    labels: set[str] = set()

    def add(row: str, col: str) -> None:
        counts[row, col] = counts.get((row, col), 0) + 1

    for gold, pred in zip(gold_docs, pred_docs, strict=True):
        gold_spans = {(ent.start, ent.end): ent.label_ for ent in gold.ents}
        pred_spans = {(ent.start, ent.end): ent.label_ for ent in pred.ents}
        labels.update(gold_spans.values(), pred_spans.values())
        for offsets, gold_label in gold_spans.items():
            add(gold_label, pred_spans.get(offsets, MISSED))
        for offsets, pred_label in pred_spans.items():
            if offsets not in gold_spans:
                add(SPURIOUS, pred_label)
    ordered = sorted(labels)
    return {
        row: {col: counts.get((row, col), 0) for col in [*ordered, MISSED]}
        for row in [*ordered, SPURIOUS]
    }


def print_report(metrics: dict[str, Any]) -> None:
    """conlleval-style per-type tables (percentages, 2 decimals) for both seqeval modes."""
    titles = {
        "conlleval": "seqeval default mode (conlleval)",
        "strict": "seqeval strict mode (IOB2)",
    }
    header = ("type", "precision", "recall", "F1", "support")
    aligns = ("l", "r", "r", "r", "r")
    for key, title in titles.items():
        scores = metrics[key]
        rows: list[tuple[str, ...]] = [
            (label, *_percentages(row), str(row["support"]))
            for label, row in scores["per_type"].items()
        ]
        rows.append(("micro avg", *_percentages(scores), str(scores["support"])))
        msg.divider(title)
        msg.table(rows, header=header, aligns=aligns, divider=True)
    spacy_scores = metrics["spacy"]
    msg.info(
        "spaCy Scorer ents: P {} R {} F1 {}".format(*_percentages(spacy_scores))
        + (f", {metrics['words_per_second']:.0f} words/s" if "words_per_second" in metrics else "")
    )
    if "tag_acc" in metrics:
        msg.info(f"spaCy Scorer tag accuracy: {100 * metrics['tag_acc']:.2f}")


def _percentages(row: dict[str, Any]) -> tuple[str, str, str]:
    return (
        f"{100 * row['precision']:.2f}",
        f"{100 * row['recall']:.2f}",
        f"{100 * row['f1']:.2f}",
    )
