"""Whether `calibrate --target-precision` keeps its promise on data drawn like dev: random
half-splits of a dev set by document; on one half the feature calibrator and each label's
Learn-then-Test threshold are fitted as `calibrate` fits them (`feature_fit.fit_on_dev`: the
calibrator on the whole half, the thresholds tested on the half's cross-fitted scores), on
the other the precision of the entities kept is measured. The guarantee says it falls below
the target in at most `--risk` of the splits.

The pipeline is decoded once (its temperature, fitted on the whole dev set by `calibrate`, is
kept: its golden-section fit computes the half's span probabilities some 60 times; only the
calibrator and the thresholds are refitted per split).

    python -m benchmarks.guarantee_splits MODEL DEV.spacy [--train TRAIN.spacy]
        [--splits 200] [--target 0.95] [--risk 0.1] [--seed 0]
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import spacy

from spacy_bert_ner.conll import load_gold_docs
from spacy_bert_ner.evaluation.calibration import decode_on_gold
from spacy_bert_ner.evaluation.feature_fit import feature_rows
from spacy_bert_ner.evaluation.guarantee import cross_fitted_scores, guaranteed_thresholds
from spacy_bert_ner.pipeline.calibrator import fit_calibrator
from spacy_bert_ner.pipeline.loading import single_bert_ner_pipe
from spacy_bert_ner.pipeline.mentions import TrainingMentions

from .machine import describe
from .tables import print_table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="A calibrated pipeline (its temperature is kept)")
    parser.add_argument("dev", type=Path, help=".spacy or CoNLL dev data with gold entities")
    parser.add_argument("--train", type=Path, help="Training corpus for the seen mentions")
    parser.add_argument("--splits", type=int, default=200, help="Random half-splits")
    parser.add_argument("--target", type=float, default=0.95, help="Target precision")
    parser.add_argument("--risk", type=float, default=0.1, help="Allowed share of misses")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the splits")
    return parser.parse_args(argv)


def run_splits(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per label: splits with a threshold, misses, and median threshold, precision and
    share of the label's entities kept on the measured half."""
    nlp = spacy.load(args.model)
    name, pipe = single_bert_ner_pipe(nlp, args.model)
    gold = load_gold_docs(args.dev, nlp.vocab)
    if args.train is not None:
        mentions = TrainingMentions.from_docs(load_gold_docs(args.train, nlp.vocab))
    else:
        mentions = pipe.mentions
    decoded = decode_on_gold(nlp, name, pipe, gold)
    rows = feature_rows(pipe, decoded, pipe.cfg["temperature"], mentions)
    doc_of = np.array([i for i, spans in enumerate(decoded.spans) for _ in spans])
    labels = np.array([label for spans in decoded.spans for *_, label in spans])
    correct = decoded.correct
    rng = np.random.default_rng(args.seed)
    found: dict[str, dict[str, list[float]]] = {
        label: {"threshold": [], "precision": [], "kept": [], "miss": []} for label in pipe.labels
    }
    for _ in range(args.splits):
        half = (rng.permutation(len(gold)) < len(gold) // 2)[doc_of]
        calibrator = fit_calibrator(rows[half], correct[half], pipe.labels, bool(mentions))
        scores = calibrator.scores(rows)
        held_out = cross_fitted_scores(
            rows[half], correct[half], doc_of[half], pipe.labels, bool(mentions)
        )
        chosen = guaranteed_thresholds(
            held_out,
            correct[half],
            pipe.labels,
            labels[half],
            args.target,
            args.risk,
            doc_of[half],
        )
        for label, threshold in chosen.items():
            if threshold is None:
                continue
            other = ~half & (labels == label)
            kept = other & (scores >= threshold)
            precision = float(correct[kept].mean()) if kept.any() else 1.0
            entry = found[label]
            entry["threshold"].append(threshold)
            entry["precision"].append(precision)
            entry["kept"].append(kept.sum() / max(other.sum(), 1))
            entry["miss"].append(precision < args.target)
    return {
        label: {
            "splits": len(entry["miss"]),
            "misses": int(sum(entry["miss"])),
            **{
                key: float(np.median(entry[key])) if entry[key] else float("nan")
                for key in ("threshold", "precision", "kept")
            },
        }  # fmt: skip
        for label, entry in found.items()
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(describe())
    results = run_splits(args)
    print(f"{args.splits} half-splits of {args.dev} by document, target precision "
          f"{args.target}, risk {args.risk}")  # fmt: skip
    print_table(
        ["label", "splits with a threshold", "below target", "median threshold",
         "median precision", "median share kept"],
        [
            [label, r["splits"], f"{r['misses']} ({r['misses'] / max(r['splits'], 1):.1%})",
             f"{r['threshold']:.2f}", f"{r['precision']:.3f}", f"{r['kept']:.3f}"]
            for label, r in results.items()
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
