"""What `adapt --retention` checks: that fine-tuning on a new domain keeps the old one.

A run ranked by its in-domain dev set alone can keep a checkpoint that has lost the old
domain, and a threshold chosen there can drop the old domain's correct entities (its
calibrator is fitted on the new domain): in a measured run on the SEC filings, 6.8 points of
CoNLL-2003 test F1, and nothing said so. Old-domain text (the pipeline's own dev set) is
scored before the run; `spacy train` then ranks checkpoints by `guarded_ents_f`
(`pipeline.scoring.retention_guarded`), and the threshold is chosen among those that keep
that text's F1 within `max_forgetting` points.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from wasabi import msg

from ..evaluation.threshold import threshold_curve
from ..pipeline.scoring import RETENTION


def mark_retention(
    nlp: Language, old_docs: Sequence[Doc] | None, dev_docs: Sequence[Doc], max_forgetting: float
) -> dict[str, Any] | None:
    """Score `nlp` as it is on the old-domain docs and on its in-domain dev set, and mark the
    old-domain docs with the guard `retention_guarded` reads (`RETENTION`; `max_forgetting`
    in F1 points). Returns those starting figures, or None without old-domain docs."""
    if not old_docs:
        return None
    start_f = entity_f(nlp, old_docs)
    guard = {"start_f": start_f, "max_forgetting": max_forgetting / 100}
    for doc in old_docs:
        doc.user_data[RETENTION] = guard
    return {
        "start_f": start_f,
        "start_dev_f": entity_f(nlp, dev_docs),
        "words": sum(len(doc) for doc in old_docs),
    }


def entity_f(nlp: Language, docs: Sequence[Doc]) -> float:
    """The entity F1 of `nlp` on gold `docs`, as `spacy train` scores a dev set."""
    scores = nlp.evaluate([Example(nlp.make_doc(doc.text), doc) for doc in docs])
    return float(scores.get("ents_f") or 0.0)


def report_retention(
    start: dict[str, Any], best_scores: dict[str, Any], max_forgetting: float
) -> dict[str, Any]:
    """What the guard saw, said and returned for `adapt.json`: the old domain's F1 before the
    run and at model-best, and whether any checkpoint beat the pipeline as it was in-domain
    while keeping the old domain."""
    best_f = float(best_scores.get("retention_f") or 0.0)
    msg.info(
        f"old domain, {start['words']} words: entity F1 {100 * start['start_f']:.2f} before, "
        f"{100 * best_f:.2f} at model-best (at most {max_forgetting:g} lost)"
    )
    improved = float(best_scores.get("ents_f") or 0.0) > start["start_dev_f"]
    if not improved:
        msg.warn(
            "no checkpoint beat the pipeline as it was on the dev set while keeping the old "
            f"domain within {max_forgetting:g} points: raise --max-forgetting, rehearse more "
            "(--rehearse-ratio) or lower --learn-rate"
        )
    return {**start, "best_f": best_f, "max_forgetting": max_forgetting, "improved": improved}


def thresholds_keeping(
    pipeline: Path, model: str, text: Path, max_forgetting: float, gpu_id: int
) -> tuple[float, list[bool]]:
    """(floor, keeps): the old-domain F1 the adapted `pipeline` must keep on `text` (that of
    `model`, the pipeline adapted from, at its own threshold, less `max_forgetting` points),
    and for each of `threshold-curve`'s thresholds whether the adapted pipeline keeps it.
    Both are scored on gold tokens, as `threshold-curve` scores."""
    start = threshold_curve(model, text, gpu_id=gpu_id)
    own = start["threshold"] if isinstance(start["threshold"], float | int) else 0.0
    start_f = min(start["curve"], key=lambda row: abs(row["threshold"] - own))["f1"]
    floor = float(start_f) - max_forgetting / 100
    adapted = threshold_curve(str(pipeline), text, gpu_id=gpu_id)["curve"]
    return floor, [row["f1"] >= floor for row in adapted]
