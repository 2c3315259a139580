"""How accurate the pipeline is on unlabelled text: `python -m spacy_bert_ner estimate`.

Precision per label is the mean calibrated score of the entities predicted: a score that is
the probability of being right makes their sum the expected number right. Recall needs the
entities not predicted, which come in two kinds:

- entities the model left out: under its own tag distributions (at the fitted temperature),
  the expected number of entities of a label that begin at a token outside every predicted
  entity (`posteriors(..., with_starts=True)`);
- entities it got wrong: a predicted entity that is wrong often sits on a gold one (a
  boundary or a type off), which it then misses. `calibrate --method features` measures on dev
  how many gold entities go missing per expected wrong prediction beyond the first kind
  (`missed_per_wrong`), and this adds that many per unit of each label's expected errors.

F1 follows. The interval (5th to 95th percentile) comes from drawing the number right and the
number missed from normal approximations of their sums of Bernoulli variables: it is the
uncertainty of the count on this data given the scores, not the error of the scores
themselves; on text far from the calibration data the scores may still be too high, and so
is the estimate.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spacy.tokens import Doc
from wasabi import msg

from ..annotate.records import read_records
from ..conll import load_gold_docs
from ..errors import BertNERError
from ..io import write_json
from ..pipeline.bert_ner import BertNER
from ..pipeline.loading import load_pipeline, single_bert_ner_pipe
from ..pipeline.losses import log_softmax
from ..pipeline.predict import scored_batches
from ..posteriors import posteriors
from ..tags import TagScheme

DRAWS = 4000
ALL = "overall"


def missed_starts(
    scheme: TagScheme,
    log_probs: Sequence[np.ndarray],
    spans: Sequence[Sequence[tuple[int, int, str]]],
    starts: Sequence[np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the expected number of entities beginning at tokens outside every predicted
    entity (`spans`), and its variance as a sum of Bernoulli variables."""
    found = posteriors(scheme, log_probs, spans, starts, with_starts=True)
    mass, variance = np.zeros(len(scheme.labels)), np.zeros(len(scheme.labels))
    for doc_spans, figures in zip(spans, found, strict=True):
        assert figures.start_probs is not None
        outside = np.ones(len(figures.start_probs), dtype=bool)
        for start, end, _ in doc_spans:
            outside[start:end] = False
        begins = figures.start_probs[outside]
        mass += begins.sum(axis=0)
        variance += (begins * (1.0 - begins)).sum(axis=0)
    return mass, variance


@dataclass
class Tally:
    """What the estimate of one label sums over the documents."""

    entities: int = 0
    right: float = 0.0  # sum of scores
    right_var: float = 0.0  # sum of p (1 - p)
    missed: float = 0.0  # expected entities beginning outside the predicted ones
    missed_var: float = 0.0

    def add(self, other: Tally) -> None:
        self.entities += other.entities
        self.right += other.right
        self.right_var += other.right_var
        self.missed += other.missed
        self.missed_var += other.missed_var

    def figures(self, missed_per_wrong: float, rng: np.random.Generator) -> dict[str, Any]:
        """Expected precision, recall and F1, each with its 90% interval."""
        wrong = self.entities - self.right
        right = rng.normal(self.right, np.sqrt(self.right_var), DRAWS).clip(0, self.entities)
        missed = rng.normal(self.missed, np.sqrt(self.missed_var), DRAWS).clip(0, None)
        missed = missed + missed_per_wrong * (self.entities - right)
        draws = {
            "precision": right / max(self.entities, 1),
            "recall": right / np.maximum(right + missed, 1e-9),
        }
        draws["f"] = 2 * right / np.maximum(self.entities + right + missed, 1e-9)
        point_missed = self.missed + missed_per_wrong * wrong
        point = {
            "precision": self.right / self.entities if self.entities else 0.0,
            "recall": self.right / (self.right + point_missed) if self.right else 0.0,
            "f": 2 * self.right / (self.entities + self.right + point_missed)
            if self.entities
            else 0.0,
        }
        return {
            "entities": self.entities,
            "expected_right": self.right,
            "expected_missed": point_missed,
            **{
                key: {
                    "estimate": point[key],
                    "low": float(np.percentile(values, 5)),
                    "high": float(np.percentile(values, 95)),
                }
                for key, values in draws.items()
            },
        }


def _inputs(path: Path, nlp: Any, text_field: str, unreadable: list[str]) -> Iterator[Doc | str]:
    """The texts of a JSONL (or Parquet) file, or the docs of a `.spacy` file (gold ignored);
    each line that cannot be read is named in `unreadable` and left out."""
    if path.suffix == ".spacy":
        yield from load_gold_docs(path, nlp.vocab)
        return
    try:
        for record in read_records(path, text_field=text_field):
            if record.text is None:
                unreadable.append(f"{path}:{record.line}: {record.error}")
            else:
                yield record.text
    except OSError as err:
        raise BertNERError(f"{path}: cannot read ({err.strerror or err})") from None


def tally(pipe: BertNER, name: str, nlp: Any, items: Iterator[Doc | str]) -> dict[str, Tally]:
    """Each label's sums over the documents of `items`, predicted once."""
    labels = pipe.labels
    tallies = {label: Tally() for label in labels}
    scheme, temperature = pipe.tag_scheme, pipe.cfg["temperature"]
    for batch in scored_batches(nlp, name, items):
        decoded = batch.decoded()
        spans = [[(s.start, s.end, s.label_) for s, _ in d.entities] for d in decoded]
        log_probs = [log_softmax(lg / temperature, np) for lg in batch.logits()]
        starts = [
            doc.to_array("SENT_START") == 1 if doc.has_annotation("SENT_START") else None
            for doc in batch.docs
        ]
        mass, variance = missed_starts(scheme, log_probs, spans, starts)
        for i, label in enumerate(labels):
            tallies[label].missed += float(mass[i])
            tallies[label].missed_var += float(variance[i])
        for doc in decoded:
            for span, score in doc.entities:
                entry = tallies[span.label_]
                entry.entities += 1
                entry.right += score
                entry.right_var += score * (1.0 - score)
    return tallies


def estimate_report(
    model: str, data_path: Path, *, text_field: str = "text", gpu_id: int = -1, seed: int = 0
) -> dict[str, Any]:
    """Expected P/R/F1 per label and overall of `model`'s bert_ner on the texts of
    `data_path`, with intervals, and the lines it could not read."""
    nlp = load_pipeline(model, gpu_id)
    name, pipe = single_bert_ner_pipe(nlp, model)
    calibrator = pipe.cfg["calibrator"] or {}
    if not calibrator:
        msg.warn(f"{name}: no feature calibrator (`calibrate --method features`): the "
                 "scores may be too high off dev, and wrong entities count as no miss")  # fmt: skip
    missed_per_wrong = float(calibrator.get("missed_per_wrong", 0.0))
    unreadable: list[str] = []
    tallies = tally(pipe, name, nlp, _inputs(Path(data_path), nlp, text_field, unreadable))
    total = Tally()
    for entry in tallies.values():
        total.add(entry)
    rng = np.random.default_rng(seed)
    return {
        "model": str(model),
        "data_path": str(data_path),
        "labels": {k: v.figures(missed_per_wrong, rng) for k, v in tallies.items()},
        ALL: total.figures(missed_per_wrong, rng),
        "missed_per_wrong": missed_per_wrong,
        "unreadable_lines": len(unreadable),
        "unreadable": unreadable,
    }


def write_estimate(
    model: str, data_path: Path, *, output: Path | None = None, text_field: str = "text",
    gpu_id: int = -1,
) -> dict[str, Any]:  # fmt: skip
    """`estimate_report` as a table (and, with `output`, its JSON)."""
    report = estimate_report(model, data_path, text_field=text_field, gpu_id=gpu_id)
    for line in report["unreadable"]:  # unwrapped, so the file:line stays with its problem
        print(f"\u26a0 {line}", file=sys.stderr)

    def cell(figure: dict[str, float]) -> str:
        return (
            f"{100 * figure['estimate']:.1f} ({100 * figure['low']:.1f}-{100 * figure['high']:.1f})"
        )

    rows = [
        [label, r["entities"], cell(r["precision"]), cell(r["recall"]), cell(r["f"])]
        for label, r in [*report["labels"].items(), (ALL, report[ALL])]
    ]
    msg.table(rows, header=["label", "entities", "P", "R", "F1"], divider=True)
    if report["unreadable_lines"]:
        msg.warn(f"{report['unreadable_lines']} lines could not be read and were left out")
    if output is not None:
        write_json(output, report)
    return report
