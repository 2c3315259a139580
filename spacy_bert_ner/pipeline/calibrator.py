"""The feature calibrator: an entity's score from its span probability and what the logits
cannot see.

A temperature rescales every span probability alike, so it cannot tell the entities a model
has met in training from those it never saw, and at the same span probability an unseen
entity is right less often; text far from the training data (another domain) is mostly
unseen entities, so one temperature fitted on dev leaves its scores too high exactly there.
This calibrator is a logistic model of "the entity is right" (exact span and label) on:

- the logit of the span probability (at the component's temperature),
- whether the span's text occurred with its label in the training data
  (`TrainingMentions`), alone and times the logit,
- the span's length and shape (one token, 3+ tokens, all capitals, no capital, a digit),
- its label,
- the uncertainty of the tokens around it (the most probable entity mass just outside the
  span: a doubt about where it ends),
- whether the same string is labelled otherwise elsewhere in the document,
- whether its words occur in lower case elsewhere in the document (the whole span, and the
  share of its capitalised words): a common noun capitalised as a defined term ("the
  Servicer", "this Agreement") is not a name, and on dev such entities are rarely right,
- the document's share of unseen entities and mean span logit: how far the whole text is
  from the training data, which no single entity shows.

It is fitted on dev (`fit`) by Newton's method on the L2-penalised log loss. The score stays
monotone in the span probability: the fit keeps both slopes on the logit (seen and unseen)
at or above zero, so within one kind of entity a higher span probability never gets a lower
score. The entities themselves are the decoder's; only their scores change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from spacy.tokens import Doc, Span

from ..errors import BertNERError, ModelLoadError, check_fraction
from .mentions import TrainingMentions
from .spans import DecodedDoc

#: The `threshold` setting that applies `calibrate --target-precision`'s thresholds.
GUARANTEED = "guaranteed"
#: The score's input is clipped to this distance from 0 and 1 before its logit.
_EPS = 1e-6
#: Features that do not depend on the label (the labels' indicators follow them).
BASE_FEATURES = (
    "bias",
    "logit",
    "unseen",
    "logit_unseen",
    "one_token",
    "long",
    "all_caps",
    "no_capital",
    "digit",
    "boundary_doubt",
    "labelled_otherwise",
    "lower_elsewhere",
    "lowercase_words",
    "doc_unseen",
    "doc_mean_logit",
)
#: The penalty on the weights (but the bias): small, since rare features (a span that also
#: occurs in lower case: 0.3% of CoNLL dev's entities) carry the strongest evidence of shift.
_L2 = 1e-3
_NEWTON_STEPS = 50


def _logit(probs: np.ndarray) -> np.ndarray:
    probs = np.clip(probs, _EPS, 1.0 - _EPS)
    return np.log(probs) - np.log1p(-probs)


def entity_features(
    doc: Doc,
    entities: Sequence[tuple[Span, float]],
    outside_probs: np.ndarray,
    mentions: TrainingMentions,
    labels: Sequence[str],
) -> np.ndarray:
    """One row of `feature_names(labels)` per entity of `doc` (its decoded spans with their
    span probabilities, and its tokens' probabilities of lying outside every entity)."""
    rows = np.zeros((len(entities), len(BASE_FEATURES) + len(labels)))
    labels_of: dict[str, set[str]] = {}
    for span, _ in entities:
        labels_of.setdefault(span.text, set()).add(span.label_)
    label_index = {label: i for i, label in enumerate(labels)}
    tokens = [token.text for token in doc]
    at: dict[str, list[int]] = {}  # where each lower-case word occurs
    for i, text in enumerate(tokens):
        if text.islower():
            at.setdefault(text, []).append(i)
    unseen_all = np.array([0.0 if mentions.seen(span) else 1.0 for span, _ in entities])
    logits = _logit(np.array([prob for _, prob in entities], dtype=np.float64))
    for row, (span, _), unseen, logit in zip(rows, entities, unseen_all, logits, strict=True):
        text = span.text
        words = [t.text for t in span]
        lowered = [w.lower() in at for w in words if w.lower() != w]
        around = outside_probs[max(span.start - 1, 0) : span.start].tolist()
        around += outside_probs[span.end : span.end + 1].tolist()
        row[: len(BASE_FEATURES)] = (
            1.0,
            logit,
            unseen,
            logit * unseen,
            float(len(span) == 1),
            float(len(span) >= 3),
            float(text.isupper() and len(text) > 1),
            float(not any(c.isupper() for c in text)),
            float(any(c.isdigit() for c in text)),
            1.0 - min(around, default=1.0),
            float(len(labels_of[text]) > 1),
            float(bool(lowered) and _occurs([w.lower() for w in words], tokens, at)),
            float(np.mean(lowered)) if lowered else 0.0,
            float(unseen_all.mean()),
            float(logits.mean()),
        )
        if span.label_ in label_index:
            row[len(BASE_FEATURES) + label_index[span.label_]] = 1.0
    return rows


def _occurs(words: list[str], tokens: list[str], at: dict[str, list[int]]) -> bool:
    """Whether `words` occur as a run of `tokens`, found from where the first occurs (`at`):
    linear in its occurrences, so a long document costs no scan per entity."""
    n = len(words)
    return any(tokens[i : i + n] == words for i in at.get(words[0], ()))


@dataclass(frozen=True)
class FeatureCalibrator:
    """Weights of the logistic model over `BASE_FEATURES` and one indicator per label."""

    labels: tuple[str, ...]
    weights: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The calibrated probability of each row of `entity_features`."""
        if not len(features):
            return np.zeros(0)
        return 1.0 / (1.0 + np.exp(-np.clip(features @ self.weights, -40.0, 40.0)))

    def rescore(
        self,
        doc: Doc,
        entities: Sequence[tuple[Span, float]],
        outside_probs: np.ndarray,
        mentions: TrainingMentions,
    ) -> list[tuple[Span, float]]:
        """The same entities, each with its calibrated score."""
        features = entity_features(doc, entities, outside_probs, mentions, self.labels)
        return [
            (span, float(p)) for (span, _), p in zip(entities, self.scores(features), strict=True)
        ]

    def to_cfg(self) -> dict[str, Any]:
        """The JSON the component's cfg keeps."""
        names = [*BASE_FEATURES, *(f"label={label}" for label in self.labels)]
        return {"version": 1, "weights": dict(zip(names, self.weights.tolist(), strict=True))}

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any], where: str) -> FeatureCalibrator:
        """Read `to_cfg`'s JSON; anything else is a one-line error naming `where`."""
        try:
            weights = dict(cfg["weights"])
            labels = tuple(n.removeprefix("label=") for n in weights if n.startswith("label="))
            names = [*BASE_FEATURES, *(f"label={label}" for label in labels)]
            if cfg["version"] != 1 or list(weights) != names:
                raise ValueError
            return cls(labels, np.array([float(weights[n]) for n in names]))
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError(
                f"{where}: the feature calibrator's weights are not ones this version reads"
            ) from None


def fit_calibrator(
    features: np.ndarray, correct: np.ndarray, labels: Sequence[str], use_unseen: bool
) -> FeatureCalibrator:
    """The L2-penalised logistic fit of `correct` on `features`, with both slopes on the span
    probability's logit kept >= 0 (the score stays monotone in it). Without `use_unseen`
    (a pipeline that keeps no training mentions) the two unseen features stay at 0."""
    x, y = np.asarray(features, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    free = np.ones(x.shape[1], dtype=bool)
    free[BASE_FEATURES.index("unseen")] = free[BASE_FEATURES.index("logit_unseen")] = use_unseen
    free &= x.std(axis=0) > 0  # constant columns (but the bias) carry nothing
    free[0] = True
    for _ in range(3):  # at most two slopes to pin at 0
        weights = _newton(x, y, free)
        slope = weights[BASE_FEATURES.index("logit")]
        unseen_slope = slope + weights[BASE_FEATURES.index("logit_unseen")]
        if slope >= 0 and unseen_slope >= 0:
            break
        if unseen_slope < 0:
            free[BASE_FEATURES.index("logit_unseen")] = False
        if slope < 0:
            free[BASE_FEATURES.index("logit")] = False
    return FeatureCalibrator(tuple(labels), weights)


def _newton(x: np.ndarray, y: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Newton's method on the mean log loss plus `_L2` times the squared weights (the bias
    unpenalised), over the `free` columns; the others stay 0."""
    cols = x[:, free]
    weights = np.zeros(cols.shape[1])
    penalty = np.full(cols.shape[1], _L2)
    penalty[0] = 0.0
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(cols @ weights, -40.0, 40.0)))
        grad = cols.T @ (p - y) / len(y) + penalty * weights
        hess = (cols * (p * (1 - p))[:, None]).T @ cols / len(y) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    out = np.zeros(x.shape[1])
    out[free] = weights
    return out


def calibrated(
    docs: Sequence[Doc],
    decoded: list[DecodedDoc],
    calibrator: dict[str, Any] | None,
    mentions: TrainingMentions,
    where: str,
) -> list[DecodedDoc]:
    """`decoded` rescored by the component's saved calibrator (its cfg entry), if any."""
    if calibrator is None:
        return decoded
    model = FeatureCalibrator.from_cfg(calibrator, where)
    return [
        DecodedDoc(model.rescore(doc, d.entities, d.outside_probs, mentions), d.outside_probs)
        for doc, d in zip(docs, decoded, strict=True)
    ]


def check_threshold(value: float | str) -> float | str:
    """A score in 0-1, or `GUARANTEED`."""
    if isinstance(value, str):
        if value != GUARANTEED:
            raise BertNERError(f"threshold: {value!r} is neither a number nor {GUARANTEED!r}")
        return value
    return check_fraction("threshold", value)


def threshold_filter(cfg: dict[str, Any], where: str) -> Callable[[Span, float], bool]:
    """Whether an entity with this score is kept: its score reaches the `threshold`, or with
    `GUARANTEED`, its label's threshold from `calibrate --target-precision` (a label it chose
    none for keeps no entity: no threshold met the target on dev)."""
    threshold = cfg["threshold"]
    if threshold != GUARANTEED:
        return lambda span, score: score >= threshold
    chosen = cfg.get("guaranteed_thresholds")
    if not chosen:
        raise BertNERError(
            f"{where}: threshold = {GUARANTEED!r} needs the thresholds that "
            "`calibrate --target-precision` saves; this pipeline has none"
        )
    limits = {label: math.inf if t is None else t for label, t in chosen.items()}
    return lambda span, score: score >= limits.get(span.label_, math.inf)
