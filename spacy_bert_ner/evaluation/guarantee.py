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

Entities of one document are not independent draws: a document the model misreads (a table
of sports results, a list of names) holds many of its errors. With the documents given, the
test counts `n / deff` entities and `errors / deff` errors, where the design effect `deff`
(Kish) is the variance of the error count summed over documents (cluster-robust) over its
binomial variance, at least 1: that of the entities a threshold keeps, or of all the label's
entities, whichever is larger. The first alone rests on the few errors above a high threshold,
which it then discounts: it comes out low exactly when a sample holds few of them by luck.

The scores tested must be fixed before the test sees its entities (LTT's assumption). The
feature calibrator is fitted on dev too, and on the entities it was fitted on it looks better
than on new ones (it has learnt their errors), so the thresholds came out too low: in half-splits
of CoNLL-2003 dev, MISC fell below the target in 12% of splits. `cross_fitted_scores` scores
each document with a calibrator fitted without it (cross-fitting by document); the thresholds
are tested on those, and applied to the calibrator fitted on all of dev. That is not exact
either (each fold's calibrator saw the other folds, and the one saved saw all of dev): like
cross-conformal prediction it approximates a test on fresh data, and `benchmarks.guarantee_splits`
measures how well.

What this does not cover: the guarantee is for data exchangeable with dev (drawn the same way,
as a random half of it is). On shifted text (another domain, another time, another annotation
convention) it says nothing; `estimate` and the drift score are how to notice that. The
design effect is itself estimated from dev, and the precision it bounds is the expected share
right among the entities kept, not the share in any one small batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..pipeline.calibrator import fit_calibrator

#: Folds of the cross-fitting (`cross_fitted_scores`), by document.
CROSS_FIT_FOLDS = 5


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


def design_effect(wrong: np.ndarray, documents: np.ndarray) -> float:
    """The cluster-robust variance of the number of errors, summed by document, over its
    binomial variance (the error rate floored at 1e-3 so no error is still one draw): how
    many times fewer independent draws the entities are worth. At least 1."""
    n = len(wrong)
    if not n:
        return 1.0
    rate = float(wrong.mean())
    _, which = np.unique(documents, return_inverse=True)
    residuals = np.bincount(which, weights=wrong - rate)
    binomial = n * max(rate, 1e-3) * (1.0 - max(rate, 1e-3))
    return max(1.0, float((residuals**2).sum()) / binomial)


def ltt_threshold(
    scores: np.ndarray,
    correct: np.ndarray,
    target_precision: float,
    risk: float,
    thresholds: Sequence[float] | None = None,
    documents: np.ndarray | None = None,
) -> float | None:
    """The lowest candidate threshold that fixed-sequence testing certifies: the precision
    of entities scored at or above it is >= `target_precision` except with probability
    `risk`. None when even the highest candidate cannot be certified. `thresholds` defaults
    to `candidates(target_precision)`; `documents` (each entity's document) makes the test
    count the entities by their design effect: that of the entities kept, or of all those
    given, whichever is larger."""
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    chosen = None
    walk = candidates(target_precision) if thresholds is None else thresholds
    # The design effect of all the label's errors: the few above a high threshold alone
    # give a noisy estimate, low exactly when they are few by luck.
    overall = 1.0 if documents is None else design_effect(~correct, documents)
    for threshold in sorted(walk, reverse=True):
        kept = scores >= threshold
        n = int(kept.sum())
        errors = n - int(correct[kept].sum())
        if documents is not None and n:
            deff = max(overall, design_effect(~correct[kept], documents[kept]))
            n, errors = max(int(n / deff), 1), int(round(errors / deff))
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
    documents: np.ndarray | None = None,
) -> dict[str, float | None]:
    """`ltt_threshold` for each label, from the entities of that label (`entity_labels`; of
    `documents`, when given). Each label's test is run at `risk`: the guarantee holds for each
    label on its own."""
    of_label = np.asarray(entity_labels)
    return {
        label: ltt_threshold(
            scores[of_label == label],
            correct[of_label == label],
            target_precision,
            risk,
            documents=None if documents is None else documents[of_label == label],
        )  # fmt: skip
        for label in labels
    }


def cross_fitted_scores(
    rows: np.ndarray,
    correct: np.ndarray,
    documents: np.ndarray,
    labels: Sequence[str],
    use_unseen: bool,
    folds: int = CROSS_FIT_FOLDS,
) -> np.ndarray:
    """Each entity's feature-calibrator score from a calibrator that never saw its document:
    the documents fall into `folds` folds (by their order), and each fold is scored by the
    calibrator fitted on the others. Learn then Test needs the scores fixed before it sees
    the entities it tests; scored by a calibrator fitted on them, they look better than on
    new documents (it has learnt their errors), and the thresholds come out too low. With a
    single document there is nothing to hold out, and the scores are the in-sample ones."""
    fold = np.unique(documents, return_inverse=True)[1] % folds
    if not fold.any():
        return fit_calibrator(rows, correct, labels, use_unseen).scores(rows)
    scores = np.zeros(len(correct))
    for k in np.unique(fold):
        held = fold == k
        calibrator = fit_calibrator(rows[~held], correct[~held], labels, use_unseen)
        scores[held] = calibrator.scores(rows[held])
    return scores
