"""The precision/recall curve of `bert_ner`'s `threshold`, from one prediction pass.

`spacy find-threshold` reloads the pipeline and predicts the whole data set again for each
threshold it tries. The threshold only drops decoded entities whose score is under it (the
decoding itself does not depend on it), so predicting once with threshold 0 and filtering by
`span._.bert_ner_score` gives the same figures for any number of thresholds, at the cost of
one evaluation. Scores are exact-span entity P/R/F, which is spaCy's `ents_f` and, since
every output is well-formed, conlleval's too.
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
from ..pipeline.predict import predict_on_gold
from ..pipeline.spans import SCORE_EXTENSION
from .plots import png_figure


def threshold_curve(
    model: str, data_path: Path, n_thresholds: int = 21, gpu_id: int = -1
) -> dict[str, Any]:
    """P/R/F at `n_thresholds` thresholds evenly spaced over 0-1 (as `spacy find-threshold`
    tries them), the best one by F1, the F1 at 0 and the pipeline's own threshold."""
    nlp = load_pipeline(model, gpu_id)
    _, pipe = single_bert_ner_pipe(nlp, model)
    own_threshold = pipe.cfg["threshold"]
    pipe.cfg["threshold"] = 0.0
    gold_docs = load_gold_docs(Path(data_path), nlp.vocab)
    if not gold_docs:
        raise BertNERError(f"{data_path}: no documents to evaluate on")
    predicted = predict_on_gold(nlp, gold_docs)
    gold = {(i, e.start, e.end, e.label_) for i, doc in enumerate(gold_docs) for e in doc.ents}
    scored = [
        ((i, e.start, e.end, e.label_), e._.get(SCORE_EXTENSION) or 0.0)
        for i, doc in enumerate(predicted)
        for e in doc.ents
    ]
    rows = []
    for threshold in np.linspace(0.0, 1.0, n_thresholds).tolist():
        kept = {span for span, score in scored if score >= threshold}
        tp = len(kept & gold)
        precision = tp / len(kept) if kept else 0.0
        recall = tp / len(gold) if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        rows.append(
            {"threshold": threshold, "precision": precision, "recall": recall, "f1": f1,
             "entities": len(kept)}
        )  # fmt: skip
    best = max(rows, key=lambda row: row["f1"])
    return {
        "model": str(model),
        "data_path": str(data_path),
        "gold_entities": len(gold),
        "threshold": own_threshold,
        "curve": rows,
        "best": best,
        "at_zero": rows[0],
    }


def write_threshold_curve(
    model: str,
    data_path: Path,
    *,
    output: Path | None = None,
    plot: Path | None = None,
    n_thresholds: int = 21,
    gpu_id: int = -1,
) -> dict[str, Any]:
    result = threshold_curve(model, data_path, n_thresholds, gpu_id)
    msg.table(
        [
            [f"{r['threshold']:.2f}", f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}",
             f"{100 * r['f1']:.2f}", r["entities"]]
            for r in result["curve"]
        ],
        header=["threshold", "P", "R", "F1", "entities"],
        divider=True,
    )  # fmt: skip
    best, zero = result["best"], result["at_zero"]
    msg.good(
        f"Best threshold {best['threshold']:.2f}: F1 {100 * best['f1']:.2f} "
        f"(at 0: {100 * zero['f1']:.2f})"
    )
    if output is not None:
        write_json(output, result)
    if plot is not None:
        plot_threshold_curve(result, Path(plot))
    return result


def plot_threshold_curve(result: dict[str, Any], path: Path) -> Path:
    """P, R and F1 by threshold, and the precision/recall curve."""
    rows = result["curve"]
    thresholds = [r["threshold"] for r in rows]
    with png_figure(path, ncols=2, figsize=(10, 4)) as (_, (by_threshold, pr)):
        for key in ("precision", "recall", "f1"):
            by_threshold.plot(thresholds, [100 * r[key] for r in rows], marker=".", label=key)
        best = result["best"]
        by_threshold.axvline(best["threshold"], color="grey", linestyle=":", label="best F1")
        by_threshold.set(xlabel="threshold (minimum entity score)", ylabel="%",
                         title="Scores by threshold")  # fmt: skip
        by_threshold.legend()
        predicted = [r for r in rows if r["entities"]]  # precision is undefined without any
        pr.plot([100 * r["recall"] for r in predicted], [100 * r["precision"] for r in predicted],
                marker=".")  # fmt: skip
        pr.set(xlabel="recall %", ylabel="precision %", title="Precision/recall")
    return path
