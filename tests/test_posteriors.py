"""Span and token posteriors against brute force: every tag sequence of a tiny doc is
enumerated, the well-formed ones weighed by their tags' probabilities, and each entity that
`TagScheme.entities` reads off them credited with the sequence's share."""

import itertools
from collections import defaultdict

import numpy as np
import pytest

from spacy_bert_ner.posteriors import posteriors
from spacy_bert_ner.tags import TagScheme, segment_bounds


def brute_force(scheme: TagScheme, log_probs: np.ndarray, starts: np.ndarray | None):
    n, size = log_probs.shape
    bounds = segment_bounds(starts, n)
    weights: dict[tuple[int, int, str], float] = defaultdict(float)
    outside = np.zeros(n)
    total = 0.0
    for seq in itertools.product(range(size), repeat=n):
        ids = np.array(seq, dtype=np.int64)
        if not all(scheme.is_valid(ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)):
            continue
        weight = float(np.exp(log_probs[np.arange(n), ids].sum()))
        total += weight
        outside += weight * (ids == scheme.outside)
        for start, end, label, _ in scheme.entities(ids, segment_starts=starts):
            weights[start, end, label] += weight
    return {span: w / total for span, w in weights.items()}, outside / total


def all_spans(scheme: TagScheme, n: int) -> list[tuple[int, int, str]]:
    return [(s, e, label) for s in range(n) for e in range(s + 1, n + 1) for label in scheme.labels]


@pytest.mark.parametrize("name", ["IOB2", "IOB1", "BIOES", "BILOU"])
@pytest.mark.parametrize("starts", [None, [True, False, True, False]])
def test_posteriors_match_enumeration(name, starts):
    scheme = TagScheme.from_labels(["LOC", "PER"], name)
    rng = np.random.default_rng(len(name) + (starts is not None))
    n = 4
    logits = rng.normal(scale=2.0, size=(n, len(scheme.tags)))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    cuts = None if starts is None else np.array(starts)
    expected, expected_outside = brute_force(scheme, log_probs, cuts)
    spans = all_spans(scheme, n)
    (result,) = posteriors(scheme, [log_probs], [spans], [cuts], with_starts=True)
    got = dict(zip(spans, result.span_probs.tolist(), strict=True))
    for span in spans:
        assert got[span] == pytest.approx(expected.get(span, 0.0), abs=1e-9), span
    assert result.outside_probs == pytest.approx(expected_outside, abs=1e-9)
    # An entity of a label begins at a token with the summed probability of its spans there.
    begins = np.zeros((n, len(scheme.labels)))
    for (start, _, label), prob in expected.items():
        begins[start, scheme.labels.index(label)] += prob
    assert result.start_probs == pytest.approx(begins, abs=1e-9)


def test_a_batch_gives_each_doc_its_own_figures():
    """Docs of different lengths (padded together) and a doc with no tokens."""
    scheme = TagScheme.from_labels(["LOC", "PER"])
    rng = np.random.default_rng(0)
    docs = [rng.normal(size=(n, len(scheme.tags))) for n in (3, 1, 0, 2)]
    docs = [d - np.log(np.exp(d).sum(axis=1, keepdims=True)) for d in docs]
    spans = [all_spans(scheme, len(d)) for d in docs]
    batch = posteriors(scheme, docs, spans)
    for doc, doc_spans, result in zip(docs, spans, batch, strict=True):
        (alone,) = posteriors(scheme, [doc], [doc_spans])
        np.testing.assert_allclose(result.span_probs, alone.span_probs, atol=1e-12)
        expected, _ = brute_force(scheme, doc, None)
        np.testing.assert_allclose(
            result.span_probs, [expected.get(span, 0.0) for span in doc_spans], atol=1e-9
        )


def test_spans_across_a_sentence_start_or_of_unknown_labels_get_zero():
    scheme = TagScheme.from_labels(["PER"])
    log_probs = np.log(np.full((4, 3), 1 / 3))
    (result,) = posteriors(
        scheme,
        [log_probs],
        [[(1, 3, "PER"), (0, 1, "ORG"), (0, 1, "PER")]],
        [np.array([1, 0, 1, 0])],
    )
    assert result.span_probs[:2].tolist() == [0.0, 0.0]
    assert 0.0 < result.span_probs[2] < 1.0


def test_confident_long_doc_stays_finite():
    """Thousands of tokens of near-certain O: no underflow to NaN, one sure entity found."""
    scheme = TagScheme.from_labels(["PER"])
    n = 5000
    log_probs = np.full((n, 3), -60.0)
    log_probs[:, scheme.outside] = 0.0
    log_probs[10, scheme.tags.index("B-PER")] = 0.0
    log_probs[10, scheme.outside] = -60.0
    (result,) = posteriors(scheme, [log_probs], [[(10, 11, "PER")]])
    assert result.span_probs[0] == pytest.approx(1.0)
    assert np.isfinite(result.outside_probs).all()


def test_padding_beside_a_long_sentence_raises_no_warning():
    """A short sentence padded to a long one's width: nothing overflows in the padding."""
    import warnings

    scheme = TagScheme.from_labels(["PER"])
    docs = [np.log(np.full((n, 3), 1 / 3)) for n in (2, 1200)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short, long_ = posteriors(scheme, docs, [[(0, 1, "PER")], [(5, 6, "PER")]])
    assert np.isfinite(short.outside_probs).all() and np.isfinite(long_.outside_probs).all()
