"""Learn then Test: the p-value against the binomial by hand, and small versions of the
half-splits check: thresholds fitted on one half keep the target precision on the other half
in all but about `risk` of the splits, where the naive choice does not; through the feature
calibrator, they do when tested on cross-fitted scores, and do not when tested on the scores
of a calibrator fitted on the very entities tested."""

import math

import numpy as np
import pytest

from spacy_bert_ner.evaluation.guarantee import (
    binomial_cdf,
    cross_fitted_scores,
    design_effect,
    guaranteed_thresholds,
    hoeffding_bentkus_pvalue,
    ltt_threshold,
)
from spacy_bert_ner.pipeline.calibrator import BASE_FEATURES, fit_calibrator


def test_binomial_cdf_by_hand():
    n, p = 12, 0.3
    exact = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    for k in range(-1, n + 1):
        assert binomial_cdf(k, n, p) == pytest.approx(sum(exact[: k + 1]), abs=1e-12)


def test_hoeffding_bentkus_pvalue():
    # No error in 100 entities against a 5% error rate: the Hoeffding term,
    # exp(-100 * log(1 / 0.95)) = 0.95^100, below the Bentkus term e * 0.95^100.
    assert hoeffding_bentkus_pvalue(0, 100, 0.05) == pytest.approx(0.95**100)
    # 3 errors in 200: the Bentkus term is the smaller one.
    bentkus = math.e * binomial_cdf(3, 200, 0.05)
    assert hoeffding_bentkus_pvalue(3, 200, 0.05) == pytest.approx(bentkus)
    assert hoeffding_bentkus_pvalue(10, 100, 0.05) == 1.0  # twice the rate: no evidence
    assert hoeffding_bentkus_pvalue(0, 0, 0.05) == 1.0
    more = [hoeffding_bentkus_pvalue(k, 400, 0.05) for k in range(0, 30, 5)]
    assert more == sorted(more)  # more errors, less evidence


def draw(rng, n):
    """Entities whose score is their probability of being right."""
    scores = rng.beta(5, 1, n)
    return scores, rng.random(n) < scores


def naive_threshold(scores, correct, target):
    """The lowest threshold whose precision on the data is at least the target."""
    ok = [t for t in np.arange(0.99, 0.0, -0.01) if correct[scores >= t].mean() >= target]
    return min(ok)


@pytest.mark.parametrize("seed", [0])
def test_half_splits_keep_the_target_precision(seed):
    rng = np.random.default_rng(seed)
    scores, correct = draw(rng, 8000)
    target, risk, misses, naive_misses = 0.95, 0.1, 0, 0
    for _ in range(100):
        half = rng.permutation(len(scores)) < len(scores) // 2
        chosen = ltt_threshold(scores[half], correct[half], target, risk)
        assert chosen is not None and chosen < 0.975  # not stuck at the top
        other = scores[~half] >= chosen
        misses += correct[~half][other].mean() < target
        naive = scores[~half] >= naive_threshold(scores[half], correct[half], target)
        naive_misses += correct[~half][naive].mean() < target
    assert misses <= 10, misses
    assert naive_misses > 20, (
        naive_misses
    )  # the check can fail: a threshold fitted without the test does


def test_per_label_thresholds_and_a_label_that_cannot_meet_the_target():
    rng = np.random.default_rng(0)
    scores, correct = draw(rng, 2000)
    labels = np.where(np.arange(2000) < 1990, "PER", "LOC")  # LOC: ten entities only
    chosen = guaranteed_thresholds(scores, correct, ["LOC", "PER", "ORG"], labels, 0.95, 0.1)
    assert chosen["LOC"] is None and chosen["ORG"] is None
    assert chosen["PER"] == ltt_threshold(scores[:1990], correct[:1990], 0.95, 0.1)


def test_errors_clustered_in_documents_count_as_fewer_draws():
    """Errors that come whole documents at a time carry less evidence than as many spread
    out: the design effect is large, and the threshold chosen is no lower."""
    rng = np.random.default_rng(0)
    scores, correct = draw(rng, 6000)
    spread = np.arange(6000) % 300  # 300 documents of 20 entities
    assert design_effect(~correct, spread) == pytest.approx(1.0, abs=0.2)
    clustered = correct.copy()
    bad_docs = rng.choice(300, 9, replace=False)
    clustered[np.isin(spread, bad_docs)] = False  # 9 documents read wholly wrong: 3%
    clustered[~np.isin(spread, bad_docs)] = True
    assert design_effect(~clustered, spread) > 10
    plain = ltt_threshold(scores, clustered, 0.95, 0.1)
    by_document = ltt_threshold(scores, clustered, 0.95, 0.1, documents=spread)
    assert by_document is None or (plain is not None and by_document >= plain)
    assert by_document != plain


def test_errors_clustered_below_the_threshold_still_count():
    """The few errors above a high threshold, one per document, look like independent draws
    (their design effect is about 1); the label's errors as a whole come whole documents at
    a time, and the test counts the entities by that larger design effect."""
    rng = np.random.default_rng(0)
    documents = np.repeat(np.arange(300), 20)
    scores = np.where(np.arange(6000) % 20 < 15, 0.99, 0.5)  # 15 confident entities a doc
    correct = np.ones(6000, dtype=bool)
    confident = np.flatnonzero(scores == 0.99)
    correct[rng.choice(confident, 180, replace=False)] = False  # 4%, spread out
    correct[(scores == 0.5) & (documents < 30)] = False  # 30 documents wholly misread
    kept = scores >= 0.9
    assert design_effect(~correct[kept], documents[kept]) < 1.3
    assert design_effect(~correct, documents) > 2.5
    spread = ltt_threshold(scores, correct, 0.95, 0.1, thresholds=[0.9])
    clustered = ltt_threshold(scores, correct, 0.95, 0.1, thresholds=[0.9], documents=documents)
    assert spread == 0.9 and clustered is None


def feature_rows(rng, n_docs, per_doc):
    """Calibrator rows whose span probability is the chance of being right, and whose other
    inputs are noise: all a calibrator fitted on them can learn beyond the logit is the
    errors of the entities it was fitted on."""
    n = n_docs * per_doc
    probs = rng.beta(12, 1, n)
    correct = rng.random(n) < probs
    rows = np.zeros((n, len(BASE_FEATURES) + 1))
    rows[:, 0] = rows[:, -1] = 1.0  # the bias, and the one label
    rows[:, 1] = np.log(probs) - np.log1p(-probs)
    fixed = ("bias", "logit", "unseen", "logit_unseen")
    noise = [i for i, name in enumerate(BASE_FEATURES) if name not in fixed]
    rows[:, noise] = rng.normal(size=(n, len(noise)))
    return rows, correct, np.repeat(np.arange(n_docs), per_doc)


def test_cross_fitted_scores_never_see_their_own_document():
    rng = np.random.default_rng(0)
    rows, correct, documents = feature_rows(rng, 40, 10)
    flipped = correct.copy()
    flipped[documents == 7] = ~flipped[documents == 7]
    before = cross_fitted_scores(rows, correct, documents, ["PER"], False)
    after = cross_fitted_scores(rows, flipped, documents, ["PER"], False)
    assert np.array_equal(before[documents == 7], after[documents == 7])
    assert not np.array_equal(before, after)  # the other folds' calibrators saw the change
    in_sample = fit_calibrator(rows, flipped, ["PER"], False).scores(rows)
    assert not np.allclose(in_sample[documents == 7], before[documents == 7])


def test_half_splits_through_the_feature_calibrator():
    """`calibrate`'s way, on each half: the calibrator fitted on the half, the thresholds
    tested on its cross-fitted scores. Tested on the scores of the calibrator fitted on the
    very entities tested (what `calibrate` did before), the thresholds fall too low."""
    rng = np.random.default_rng(0)
    rows, correct, documents = feature_rows(rng, 150, 8)
    found = {"cross-fitted": [], "in-sample": []}
    for _ in range(200):
        half = (rng.permutation(150) < 75)[documents]
        scores = fit_calibrator(rows[half], correct[half], ["PER"], False).scores(rows)
        held_out = cross_fitted_scores(rows[half], correct[half], documents[half], ["PER"], False)
        for kind, tested in (("cross-fitted", held_out), ("in-sample", scores[half])):
            chosen = ltt_threshold(tested, correct[half], 0.95, 0.1, documents=documents[half])
            if chosen is not None:
                found[kind].append(correct[~half & (scores >= chosen)].mean() < 0.95)
    assert len(found["cross-fitted"]) >= 60  # a threshold in most splits: not a vacuous pass
    assert np.mean(found["cross-fitted"]) <= 0.1, np.mean(found["cross-fitted"])
    assert np.mean(found["in-sample"]) > 0.15, np.mean(found["in-sample"])
