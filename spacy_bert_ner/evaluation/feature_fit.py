"""Fitting on dev what comes after the temperature: the feature calibrator
(`pipeline.calibrator`) and the guaranteed thresholds (`guarantee`).

The calibrator reads, for each decoded entity, its span probability at the component's
temperature and the evidence beside it (training mentions, shape, label, the doubt around
it); this module computes those rows for the entities decoded on gold docs
(`calibration.DecodedOnGold`, read through `Decoded` so that this module does not import the
one that calls it) and fits the logistic model to whether each one is right.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from spacy.tokens import Doc, Span
from wasabi import msg

from ..pipeline.bert_ner import BertNER
from ..pipeline.calibrator import FeatureCalibrator, entity_features, fit_calibrator
from ..pipeline.losses import log_softmax
from ..pipeline.mentions import TrainingMentions
from ..pipeline.spans import DecodedDoc
from ..posteriors import posteriors
from .drift import reference_of
from .estimate import missed_starts
from .guarantee import cross_fitted_scores, guaranteed_thresholds


class Decoded(Protocol):
    """What this module reads of `calibration.DecodedOnGold` (a frozen dataclass)."""

    @property
    def docs(self) -> list[Doc]: ...
    @property
    def logits(self) -> list[np.ndarray]: ...
    @property
    def starts(self) -> list[np.ndarray | None]: ...
    @property
    def spans(self) -> list[list[tuple[int, int, str]]]: ...
    @property
    def correct(self) -> np.ndarray: ...
    @property
    def n_gold(self) -> int: ...


def decoded_docs(pipe: BertNER, decoded: Decoded, temperature: float) -> list[DecodedDoc]:
    """The decoded entities as spans of their docs, each with its span probability at
    `temperature`, and every token's probability of lying outside any entity."""
    scaled = [log_softmax(doc_logits / temperature, np) for doc_logits in decoded.logits]
    found = posteriors(pipe.tag_scheme, scaled, decoded.spans, decoded.starts)
    return [
        DecodedDoc(
            [
                (Span(doc, start, end, label=label), float(p))
                for (start, end, label), p in zip(spans, figures.span_probs, strict=True)
            ],
            figures.outside_probs,
        )
        for doc, spans, figures in zip(decoded.docs, decoded.spans, found, strict=True)
    ]


def feature_rows(
    pipe: BertNER, decoded: Decoded, temperature: float, mentions: TrainingMentions
) -> np.ndarray:
    """`entity_features` of every decoded entity, in `decoded.correct`'s order."""
    found = decoded_docs(pipe, decoded, temperature)
    rows = [
        entity_features(doc, d.entities, d.outside_probs, mentions, pipe.labels)
        for doc, d in zip(decoded.docs, found, strict=True)
    ]
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def feature_scores(
    pipe: BertNER,
    decoded: Decoded,
    temperature: float,
    calibrator: FeatureCalibrator,
    mentions: TrainingMentions,
) -> np.ndarray:
    """Every decoded entity's calibrated score, in `decoded.correct`'s order."""
    return calibrator.scores(feature_rows(pipe, decoded, temperature, mentions))


def span_scores(pipe: BertNER, decoded: Decoded) -> np.ndarray:
    """Every decoded entity's score as the component gives it now: its span probability at
    the temperature, rescored by its feature calibrator if it has one."""
    temperature = pipe.cfg["temperature"]
    if pipe.cfg["calibrator"] is None:
        found = decoded_docs(pipe, decoded, temperature)
        return np.array([p for doc in found for _, p in doc.entities])
    calibrator = FeatureCalibrator.from_cfg(pipe.cfg["calibrator"], pipe.name)
    return feature_scores(pipe, decoded, temperature, calibrator, pipe.mentions)


def missed_per_wrong(pipe: BertNER, decoded: Decoded, scores: np.ndarray) -> float:
    """How many gold entities of dev go missing per expected wrong prediction, beyond those
    the model's own distributions expect it to leave out (`estimate.missed_starts`): a
    wrong entity often sits where a gold one was missed (boundary or type off)."""
    temperature = pipe.cfg["temperature"]
    scaled = [log_softmax(doc_logits / temperature, np) for doc_logits in decoded.logits]
    left_out, _ = missed_starts(pipe.tag_scheme, scaled, decoded.spans, decoded.starts)
    missed = decoded.n_gold - int(decoded.correct.sum()) - float(left_out.sum())
    wrong = float((1.0 - scores).sum())
    return max(0.0, missed / wrong) if wrong > 0 else 0.0


def fit_on_dev(
    pipe: BertNER,
    decoded: Decoded,
    features: bool,
    target_precision: float | None,
    risk: float,
) -> dict[str, Any]:
    """Fit `pipe`'s feature calibrator (with `features`) and its guaranteed thresholds (with
    a `target_precision`) on the entities decoded on dev, set them in its cfg, and return
    what was fitted."""
    fitted: dict[str, Any] = {}
    labels = [label for doc in decoded.spans for *_, label in doc]
    documents = np.array([i for i, doc in enumerate(decoded.spans) for _ in doc])
    if features and not labels:
        # A model barely trained decodes nothing; a fit on no entities has no weights.
        msg.warn(f"{pipe.name}: no entity decoded on dev; no feature calibrator fitted, the "
                 "temperature alone calibrates")  # fmt: skip
        features = False
    certified_on = None  # the scores the thresholds are tested on
    if features:
        rows, use_unseen = _fit_calibrator(pipe, decoded, labels)
        fitted["calibrator"] = pipe.cfg["calibrator"]
        if target_precision is not None:
            certified_on = cross_fitted_scores(
                rows, decoded.correct, documents, pipe.labels, use_unseen
            )
    elif labels and target_precision is not None:
        # Nothing but one number (the temperature) was fitted on dev's entities: their
        # span probabilities are tested as they are.
        certified_on = span_scores(pipe, decoded)
    if target_precision is not None:
        chosen: dict[str, float | None] = dict.fromkeys(pipe.labels)  # nothing decoded: none
        if certified_on is not None:
            chosen = guaranteed_thresholds(certified_on, decoded.correct, pipe.labels, labels,
                                           target_precision, risk, documents)  # fmt: skip
        pipe.cfg["guaranteed_thresholds"] = fitted["guaranteed_thresholds"] = chosen
        shown = ", ".join(f"{k} {'none' if t is None else t}" for k, t in chosen.items())
        msg.good(f"{pipe.name}: thresholds for precision >= {target_precision} "
                 f"(risk {risk}): {shown}")  # fmt: skip
    return fitted


def _fit_calibrator(pipe: BertNER, decoded: Decoded, labels: list[str]) -> tuple[np.ndarray, bool]:
    """Fit the feature calibrator on all of dev and set it, with what `estimate` and the
    drift score read of dev, in `pipe`'s cfg; the feature rows and whether they tell seen
    from unseen entities."""
    if not pipe.mentions:
        msg.warn(f"{pipe.name}: no training mentions (pass --train CORPUS); the calibrator "
                 "cannot tell seen from unseen entities")  # fmt: skip
    rows = feature_rows(pipe, decoded, pipe.cfg["temperature"], pipe.mentions)
    use_unseen = bool(pipe.mentions)
    calibrator = fit_calibrator(rows, decoded.correct, pipe.labels, use_unseen)
    pipe.cfg["calibrator"] = calibrator.to_cfg()
    scores = calibrator.scores(rows)
    pipe.cfg["calibrator"]["missed_per_wrong"] = missed_per_wrong(pipe, decoded, scores)
    pipe.cfg["calibrator"]["reference"] = reference_of(scores, pipe.labels, np.asarray(labels))
    loss = entity_log_loss(scores, decoded.correct)
    msg.good(f"{pipe.name}: feature calibrator fitted, dev entity log loss {loss:.4f}")
    return rows, use_unseen


def entity_log_loss(probs: np.ndarray, correct: np.ndarray) -> float:
    """Mean log loss of entity scores `probs` against whether each entity is right."""
    probs = np.clip(probs, 1e-12, 1.0 - 1e-12)
    return float(-np.where(correct, np.log(probs), np.log1p(-probs)).mean())
