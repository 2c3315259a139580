"""A precision you can set: per-label thresholds by Learn then Test.

Angelopoulos, Bates, Candès, Jordan and Lei (2021), "Learn then Test: Calibrating Predictive
Algorithms to Achieve Risk Control" (arXiv:2110.01052). For each label and each candidate
threshold t, the null hypothesis is "the precision of this label's entities scored >= t is
below the target". On dev, with n such entities of which k are wrong, the Hoeffding-Bentkus
p-value of that null (their eq. 5, after Bates et al. 2021) bounds how likely k errors or fewer
were under it. Fixed-sequence testing walks the candidates from the highest threshold down and
rejects while the p-value is at most the risk delta, stopping at the first it cannot reject;
the lowest rejected threshold (the most recall) is chosen. Fixed-sequence testing controls the
family-wise error at delta, so the chosen threshold's precision is below the target with
probability at most delta, over the draw of dev.

What this does not cover: the guarantee is for data exchangeable with dev (drawn the same way,
as a random half of it is). On shifted text (another domain, another time, another annotation
convention) it says nothing; `estimate` and the drift score are how to notice that. It also
treats dev's entities as independent draws, whereas entities of one document are related, and
the precision it bounds is the expected share right among the entities kept, not the share in
any one small batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def candidates(target_precision: float) -> list[float]:
    """The thresholds fixed-sequence testing walks, from the highest down: fixed in advance
    (they depend on the target alone), as the test needs. The walk starts halfway between the
    target and 1, not at 0.99: a test of the first threshold that few entities reach cannot
    reject, and fixed-sequence testing stops at its first non-rejection."""
    start = 1.0 - (1.0 - target_precision) / 2
    return [start, *(t for t in (round(1.0 - k / 100, 2) for k in range(1, 100)) if t < start)]


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), summed in log space."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k + 1)
    ]  # fmt: skip
    top = max(log_terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms))


def hoeffding_bentkus_pvalue(errors: int, n: int, alpha: float) -> float:
    """The p-value of "the error rate exceeds `alpha`" after `errors` wrong out of `n`:
    min(exp(-n h(r, alpha)), e P(Bin(n, alpha) <= errors)) with r = errors / n (capped at
    alpha) and h the binary relative entropy (LTT, eq. 5). 1 without any entity."""
    if n == 0:
        return 1.0
    rate = min(errors / n, alpha)
    h = (rate * math.log(rate / alpha) if rate > 0 else 0.0) + (1 - rate) * math.log(
        (1 - rate) / (1 - alpha)
    )
    return min(1.0, math.exp(-n * h), math.e * binomial_cdf(errors, n, alpha))


def ltt_threshold(
    scores: np.ndarray,
    correct: np.ndarray,
    target_precision: float,
    risk: float,
    thresholds: Sequence[float] | None = None,
) -> float | None:
    """The lowest candidate threshold that fixed-sequence testing certifies: the precision
    of entities scored at or above it is >= `target_precision` except with probability
    `risk`. None when even the highest candidate cannot be certified. `thresholds` defaults
    to `candidates(target_precision)`."""
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    chosen = None
    walk = candidates(target_precision) if thresholds is None else thresholds
    for threshold in sorted(walk, reverse=True):
        kept = scores >= threshold
        n = int(kept.sum())
        errors = n - int(correct[kept].sum())
        if hoeffding_bentkus_pvalue(errors, n, 1.0 - target_precision) > risk:
            break
        chosen = threshold
    return chosen


def guaranteed_thresholds(
    scores: np.ndarray,
    correct: np.ndarray,
    labels: Sequence[str],
    entity_labels: Sequence[str],
    target_precision: float,
    risk: float,
) -> dict[str, float | None]:
    """`ltt_threshold` for each label, from the entities of that label (`entity_labels`).
    Each label's test is run at `risk`: the guarantee holds for each label on its own."""
    of_label = np.asarray(entity_labels)
    return {
        label: ltt_threshold(
            scores[of_label == label], correct[of_label == label], target_precision, risk
        )
        for label in labels
    }
