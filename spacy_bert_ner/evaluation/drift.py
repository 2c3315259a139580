"""Watching the entities a running pipeline predicts: per label the estimated precision (the
mean calibrated score), the share of entities never seen in training, and how far the
recent scores have moved from those on the calibration data.

The drift score is the population stability index (PSI) of the window's entity scores
against the dev scores `calibrate` saved (`reference`): the sum over ten equal-width score
bins of (window share - dev share) * ln(window share / dev share). By the usual reading,
under 0.1 is no shift, 0.1-0.25 a moderate one, and over 0.25 (`ALARM_PSI`) a shift that
makes the calibration unreliable: the text is no longer like dev, so neither the scores nor
the guarantee of `calibrate --target-precision` can be trusted on it. The window is the last
`window` entities (per label, and overall), so a burst of short documents counts as much as
one long one; with fewer than `min_entities` in it (or the window, if smaller), its PSI is
not computed (None), as a handful of entities moves the PSI on noise alone.

The sizes are measured: CoNLL-2003 test sentences in document order, against the dev
reference, come in runs from one document, and a window of 500 entities crossed 0.25 there
(at most 0.29) though the text is news like dev; at 1,000 (and
from 300 on) it stayed under 0.22, and crossed 0.25 122 sentences into SEC filings.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

N_BINS = 10
ALARM_PSI = 0.25
WINDOW = 1000
MIN_ENTITIES = 300
#: Shares are floored at this before the logarithm: an empty bin on either side is finite.
_FLOOR = 1e-4
ALL = "overall"


def score_shares(scores: Iterable[float]) -> list[float]:
    """The share of `scores` in each of `N_BINS` equal-width bins over 0-1."""
    values = np.asarray(list(scores), dtype=np.float64)
    if not len(values):
        return [0.0] * N_BINS
    which = np.minimum((values * N_BINS).astype(np.int64), N_BINS - 1)
    return (np.bincount(which, minlength=N_BINS) / len(values)).tolist()


def psi(shares: Sequence[float], reference: Sequence[float]) -> float:
    """The population stability index of bin `shares` against `reference` shares."""
    actual = np.maximum(np.asarray(shares, dtype=np.float64), _FLOOR)
    expected = np.maximum(np.asarray(reference, dtype=np.float64), _FLOOR)
    return float(((actual - expected) * np.log(actual / expected)).sum())


def reference_of(scores: np.ndarray, labels: Sequence[str], entity_labels: np.ndarray) -> dict:
    """What `calibrate` saves of the dev scores: their bin shares overall and per label."""
    return {
        ALL: score_shares(scores),
        **{label: score_shares(scores[entity_labels == label]) for label in labels},
    }


class QualityMonitor:
    """The running figures over the last `window` entities, per label and overall."""

    def __init__(
        self,
        reference: dict[str, list[float]],
        window: int = WINDOW,
        min_entities: int = MIN_ENTITIES,
    ) -> None:
        self.reference = reference
        self.min_entities = min(min_entities, window)
        self._window = window
        self._recent: dict[str, deque[tuple[float, bool]]] = {}
        self._lock = threading.Lock()  # fed by the service's loop, read by its scrapes

    def observe(self, label: str, score: float, seen: bool) -> None:
        """One predicted entity: its label, calibrated score and whether training had it."""
        with self._lock:
            for key in (label, ALL):
                self._recent.setdefault(key, deque(maxlen=self._window)).append((score, seen))

    def figures(self, key: str = ALL) -> dict[str, Any]:
        """The window's entities, estimated precision, unseen share and PSI for `key` (a
        label, or `ALL`); None where the window is empty or too small for a PSI."""
        with self._lock:
            recent = list(self._recent.get(key, ()))
        scores = [score for score, _ in recent]
        drift = None
        if len(scores) >= self.min_entities and key in self.reference:
            drift = psi(score_shares(scores), self.reference[key])
        return {
            "entities": len(scores),
            "estimated_precision": float(np.mean(scores)) if scores else None,
            "unseen_share": float(np.mean([not seen for _, seen in recent])) if scores else None,
            "psi": drift,
            "alarm": drift is not None and drift > ALARM_PSI,
        }

    def keys(self) -> list[str]:
        """`ALL` and every label seen so far or in the reference."""
        with self._lock:
            return [ALL, *sorted({*self._recent, *self.reference} - {ALL})]
