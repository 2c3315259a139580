"""Scores split by whether an entity was seen in training (Augenstein et al. 2017,
"Generalisation in named entity recognition: A quantitative analysis").

A test set's F1 mostly reflects its share of mentions the model was trained on: on CoNLL-2003
most test entities occur in eng.train with the same label, and a model may score well by
remembering them. Splitting the scores shows how it does on names it has never seen, which is
what a user's own documents are full of.

A gold entity is *seen* when its text (whitespace runs made one space, case kept) occurred in
the training corpus with the same label (`pipeline.mentions.TrainingMentions`), else *unseen*.
Recall in a bucket is the share of its gold entities predicted exactly (same tokens, same
label). Precision in a bucket splits the *predicted* entities the same way, by their own text
and predicted label: the share of predicted entities whose (text, label) occurred in training
that are correct, and likewise for those whose pair did not. A correct prediction has its gold
entity's text and label, so it falls in the same bucket as that entity: each bucket's true
positives are the same count on both sides, and its F1 is the usual harmonic mean. A wrong
prediction lands where its own text and label put it: "Paris" predicted as PER counts against
the unseen bucket's precision when eng.train never had a PER "Paris".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from spacy.tokens import Doc
from wasabi import msg

from ..pipeline.mentions import TrainingMentions
from .scores import check_pairs

BUCKETS = ("seen", "unseen")


def seen_unseen_scores(
    gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], mentions: TrainingMentions
) -> dict[str, Any]:
    """Micro and per-type precision/recall/F1 (0..1) of `pred_docs` against `gold_docs`
    (paired by position, same tokens) for the seen and the unseen entities.

    Returns {"seen": bucket, "unseen": bucket, "unseen_share": share of gold entities unseen}
    where a bucket is {precision, recall, f1, support (gold entities), predicted, correct,
    per_type: {LABEL: same keys but per_type}}.
    """
    check_pairs(gold_docs, pred_docs)
    support: Counter[tuple[str, str]] = Counter()  # (bucket, label) -> gold entities
    predicted: Counter[tuple[str, str]] = Counter()
    correct: Counter[tuple[str, str]] = Counter()
    for gold, pred in zip(gold_docs, pred_docs, strict=True):
        gold_spans = {(ent.start, ent.end, ent.label_) for ent in gold.ents}
        for ent in gold.ents:
            bucket = _bucket(mentions.seen(ent))
            support[bucket, ent.label_] += 1
            correct[bucket, ent.label_] += 0  # so a type nobody predicted still gets a row
        for ent in pred.ents:
            bucket = _bucket(mentions.seen(ent))
            predicted[bucket, ent.label_] += 1
            correct[bucket, ent.label_] += (ent.start, ent.end, ent.label_) in gold_spans
    scores: dict[str, Any] = {}
    for bucket in BUCKETS:
        labels = sorted({label for b, label in [*support, *predicted] if b == bucket})
        rows = {label: _row(support, predicted, correct, [(bucket, label)]) for label in labels}
        scores[bucket] = {
            **_row(support, predicted, correct, [(bucket, label) for label in labels]),
            "per_type": rows,
        }
    n_gold = scores["seen"]["support"] + scores["unseen"]["support"]
    scores["unseen_share"] = scores["unseen"]["support"] / n_gold if n_gold else 0.0
    return scores


def _bucket(seen: bool) -> str:
    return "seen" if seen else "unseen"


def _row(
    support: Counter[tuple[str, str]],
    predicted: Counter[tuple[str, str]],
    correct: Counter[tuple[str, str]],
    keys: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    n_gold = sum(support[key] for key in keys)
    n_pred = sum(predicted[key] for key in keys)
    n_correct = sum(correct[key] for key in keys)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": n_gold,
        "predicted": n_pred,
        "correct": n_correct,
    }


def print_seen_unseen(scores: dict[str, Any], train_path: object) -> None:
    """One table: per bucket and type, P/R/F1 in percent, gold and predicted counts."""
    rows: list[tuple[str, ...]] = []
    for bucket in BUCKETS:
        for label, row in [*scores[bucket]["per_type"].items(), ("all", scores[bucket])]:
            rows.append(
                (bucket, label, *(f"{100 * row[key]:.2f}" for key in ("precision", "recall", "f1")),
                 str(row["support"]), str(row["predicted"]))
            )  # fmt: skip
    share = 100 * scores["unseen_share"]
    msg.divider(f"seen / unseen in {train_path} (unseen: {share:.1f}% of gold entities)")
    header = ("bucket", "type", "precision", "recall", "F1", "gold", "predicted")
    msg.table(rows, header=header, aligns=("l", "l", "r", "r", "r", "r", "r"), divider=True)
