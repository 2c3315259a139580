"""Whether entity scores mean what they say, on gold data: `python -m spacy_bert_ner reliability`.

An entity counts as correct when a gold entity has exactly its span and label. Three scores
of the same decoded entities are compared: the mean probability of the entity's tags (what
`span._.bert_ner_score` was before span posteriors), the span posterior at T = 1, and the span
posterior at the component's fitted temperature, when `calibrate` has fitted one, and the
feature calibrator's score, when it has fitted that (`span._.bert_ner_score` is the last of
these the pipeline has). For each:
expected calibration error over 10 equal-width bins (the gap between mean score and share
correct, weighted by how many entities fall in the bin), the Brier score, and the precision and
recall kept by a threshold on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from wasabi import msg

from ..conll import load_gold_docs
from ..errors import BertNERError
from ..io import write_json
from ..pipeline.loading import load_pipeline, single_bert_ner_pipe
from .calibration import decode_on_gold
from .feature_fit import span_scores
from .plots import png_figure

THRESHOLDS = (0.5, 0.8, 0.9, 0.95)
N_BINS = 10


def reliability(scores: np.ndarray, correct: np.ndarray, n_gold: int) -> dict[str, Any]:
    """ECE (`N_BINS` equal-width bins), Brier score, per-bin figures, and P/R kept at each of
    `THRESHOLDS`, for entity `scores` of which `correct` are right, against `n_gold` entities."""
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    which = np.minimum((scores * N_BINS).astype(np.int64), N_BINS - 1)
    bins, ece = [], 0.0
    for b in range(N_BINS):
        inside = which == b
        count = int(inside.sum())
        mean_score = float(scores[inside].mean()) if count else None
        accuracy = float(correct[inside].mean()) if count else None
        if count:
            ece += count / len(scores) * abs(accuracy - mean_score)  # type: ignore[operator]
        bins.append({"low": b / N_BINS, "count": count, "mean_score": mean_score,
                     "accuracy": accuracy})  # fmt: skip
    kept = []
    for threshold in THRESHOLDS:
        mask = scores >= threshold
        tp = int(correct[mask].sum())
        kept.append({"threshold": threshold, "entities": int(mask.sum()),
                     "precision": tp / int(mask.sum()) if mask.any() else 0.0,
                     "recall": tp / n_gold if n_gold else 0.0})  # fmt: skip
    return {
        "ece": ece if len(scores) else 0.0,
        "brier": float(((scores - correct) ** 2).mean()) if len(scores) else 0.0,
        "mean_score": float(scores.mean()) if len(scores) else 0.0,
        "accuracy": float(correct.mean()) if len(scores) else 0.0,
        "bins": bins,
        "kept": kept,
    }


def reliability_report(model: str, data_path: Path, gpu_id: int = -1) -> dict[str, Any]:
    """The three scores' `reliability` for the bert_ner component of `model` on `data_path`."""
    nlp = load_pipeline(model, gpu_id)
    name, pipe = single_bert_ner_pipe(nlp, model)
    gold_docs = load_gold_docs(Path(data_path), nlp.vocab)
    if not gold_docs:
        raise BertNERError(f"{data_path}: no documents to score")
    decoded = decode_on_gold(nlp, name, pipe, gold_docs)
    temperature = pipe.cfg["temperature"]
    scores = {
        "mean tag probability": decoded.mean_tag_probs,
        "span probability, T=1": decoded.span_probs(pipe, 1.0),
    }
    if temperature != 1.0:  # a pipeline that `calibrate` has not fitted has only those two
        scores[f"span probability, T={temperature:.3g}"] = decoded.span_probs(pipe, temperature)
    if pipe.cfg["calibrator"] is not None:  # fitted by `calibrate --method features`
        scores["feature calibrator"] = span_scores(pipe, decoded)
    return {
        "model": str(model),
        "data_path": str(data_path),
        "temperature": temperature,
        "gold_entities": decoded.n_gold,
        "entities": int(len(decoded.correct)),
        "scores": {
            key: reliability(np.asarray(v), decoded.correct, decoded.n_gold)
            for key, v in scores.items()
        },
    }


def write_reliability_report(
    model: str, data_path: Path, *, output: Path | None = None, plot: Path | None = None,
    gpu_id: int = -1,
) -> dict[str, Any]:  # fmt: skip
    report = reliability_report(model, data_path, gpu_id)
    header = ["score", "ECE", "Brier", *(f"P/R >= {t}" for t in THRESHOLDS)]
    rows = [
        [key, f"{r['ece']:.3f}", f"{r['brier']:.3f}",
         *(f"{100 * k['precision']:.1f}/{100 * k['recall']:.1f}" for k in r["kept"])]
        for key, r in report["scores"].items()
    ]  # fmt: skip
    msg.table(rows, header=header, divider=True)
    if output is not None:
        write_json(output, report)
    if plot is not None:
        plot_reliability(report, Path(plot))
        msg.good(f"Reliability diagram written to {plot}")
    return report


def plot_reliability(report: dict[str, Any], path: Path) -> Path:
    """Share correct against mean score per bin, one line per score, beside the diagonal."""
    with png_figure(path, ncols=1, figsize=(5, 5)) as (_, axis):
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
        for key, r in report["scores"].items():
            filled = [b for b in r["bins"] if b["count"]]
            axis.plot([b["mean_score"] for b in filled], [b["accuracy"] for b in filled],
                      marker="o", label=f"{key} (ECE {r['ece']:.3f})")  # fmt: skip
        axis.set(xlabel="entity score", ylabel="share of entities correct",
                 title="Reliability of entity scores", xlim=(0, 1), ylim=(0, 1))  # fmt: skip
        axis.legend(fontsize="small")
    return path
