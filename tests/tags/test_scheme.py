"""The tag scheme (`tags.scheme`): transitions, constrained decoding, entities, gold
conversion and segments, checked against the string rules of `tag_rules` and brute force."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spacy_bert_ner.tags import SCHEMES, TagScheme
from tests.tags.tag_rules import encode, ids_of, ok_end, ok_next, well_formed

NEG_INF = -math.inf


def path_score(log_probs: np.ndarray, ids) -> float:
    return float(sum(log_probs[t, i] for t, i in enumerate(ids)))


def brute_force_best(scheme: TagScheme, log_probs: np.ndarray) -> float:
    """Best well-formed score by trying every one of the T**n sequences."""
    n, size = log_probs.shape
    return max(
        path_score(log_probs, ids)
        for ids in itertools.product(range(size), repeat=n)
        if well_formed(scheme, ids)
    )


def reference_best(scheme: TagScheme, log_probs: np.ndarray) -> float:
    """Best well-formed score by a plain dynamic programme over the string rules above."""
    n, size = log_probs.shape
    if n == 0:
        return 0.0
    tags, name = scheme.tags, scheme.name
    best = [log_probs[0, j] if ok_next(name, None, tags[j]) else NEG_INF for j in range(size)]
    for t in range(1, n):
        best = [
            max(
                (best[i] for i in range(size) if ok_next(name, tags[i], tags[j])),
                default=NEG_INF,
            )
            + log_probs[t, j]
            for j in range(size)
        ]
    return max(best[j] for j in range(size) if ok_end(name, tags[j]))


@pytest.mark.parametrize("name", SCHEMES)
def test_transition_matrix_matches_string_rules(name):
    scheme = TagScheme.from_labels(["LOC", "PER"], name)
    for i, prev in enumerate(scheme.tags):
        assert scheme.allowed_start[i] == ok_next(name, None, prev)
        assert scheme.allowed_end[i] == ok_end(name, prev)
        for j, tag in enumerate(scheme.tags):
            assert scheme.allowed[i, j] == ok_next(name, prev, tag), (prev, tag)


# --- decoding ----------------------------------------------------------------------------


def test_decode_repairs_ill_formed_argmax():
    scheme = TagScheme.from_tags(["O", "B-PER", "I-PER"])
    probs = np.array(
        [
            [0.5, 0.4, 0.1],  # argmax O ...
            [0.2, 0.1, 0.7],  # ... then I-PER: ill-formed
            [0.8, 0.1, 0.1],
        ]
    )
    log_probs = np.log(probs)
    assert not scheme.is_valid(log_probs.argmax(axis=1))
    decoded = scheme.decode(log_probs)
    # B-PER I-PER O scores .4*.7*.8 = .224 > O O O .5*.2*.8 = .08 and O B-PER O .04.
    assert decoded.tolist() == [1, 2, 0]
    assert decoded.dtype == np.int64
    assert math.isclose(path_score(log_probs, decoded), brute_force_best(scheme, log_probs))


def test_decode_prefers_dropping_entity_when_cheaper():
    scheme = TagScheme.from_tags(["O", "B-PER", "I-PER"])
    log_probs = np.log(np.array([[0.9, 0.05, 0.05], [0.3, 0.1, 0.6]]))
    assert scheme.decode(log_probs).tolist() == [0, 0]  # .27 beats B-PER I-PER .03


def test_decode_fast_path_returns_argmax():
    scheme = TagScheme.from_labels(["PER"], "BIOES")
    rng = np.random.default_rng(0)
    log_probs = rng.normal(size=(4, 5))
    wanted = ids_of(scheme, ["S-PER", "O", "B-PER", "E-PER"])
    log_probs[np.arange(4), wanted] += 10.0
    assert scheme.decode(log_probs).tolist() == wanted.tolist()


def test_decode_empty():
    scheme = TagScheme.from_labels(["PER"])
    out = scheme.decode(np.zeros((0, 3)))
    assert out.shape == (0,)
    assert out.dtype == np.int64


def test_decode_rejects_wrong_width():
    with pytest.raises(ValueError, match="3"):
        TagScheme.from_labels(["PER"]).decode(np.zeros((2, 4)))


@pytest.mark.parametrize("name", SCHEMES)
@pytest.mark.parametrize("fill", [NEG_INF, -1e300, math.nan])
def test_decode_stays_valid_on_degenerate_scores(name, fill):
    scheme = TagScheme.from_labels(["LOC", "PER"], name)
    size = len(scheme.tags)
    everything = np.full((5, size), fill)
    assert well_formed(scheme, scheme.decode(everything))
    # Only a forbidden tag is finite: the argmax is ill-formed, the repair must not be.
    only_inside = np.full((5, size), fill)
    only_inside[:, scheme.tags.index("I-PER")] = 0.0
    decoded = scheme.decode(only_inside)
    assert well_formed(scheme, decoded)
    if name != "IOB1":
        assert decoded[0] != scheme.tags.index("I-PER")


SMALL_SCHEMES = [
    TagScheme.from_labels(labels, name) for name in SCHEMES for labels in (["X"], ["X", "Y"])
]


@st.composite
def scored_sequences(draw):
    scheme = draw(st.sampled_from(SMALL_SCHEMES))
    n = draw(st.integers(0, 12))
    elements = st.one_of(
        st.floats(-30.0, 0.0, allow_nan=False), st.sampled_from([0.0, -1.0, NEG_INF])
    )
    log_probs = draw(arrays(np.float64, (n, len(scheme.tags)), elements=elements))
    return scheme, log_probs


def assert_optimal(scheme: TagScheme, log_probs: np.ndarray, decoded: np.ndarray, best: float):
    got = path_score(log_probs, decoded)
    if best == NEG_INF:
        assert got == NEG_INF
    else:
        assert math.isclose(got, best, rel_tol=1e-9, abs_tol=1e-9), (got, best)


@settings(max_examples=300, deadline=None)
@given(scored_sequences())
def test_decode_is_constrained_optimum(case):
    scheme, log_probs = case
    decoded = scheme.decode(log_probs)
    n, size = log_probs.shape
    assert decoded.shape == (n,)
    assert decoded.dtype == np.int64
    assert well_formed(scheme, decoded.tolist())
    assert scheme.is_valid(decoded)
    assert_optimal(scheme, log_probs, decoded, reference_best(scheme, log_probs))
    if size**n <= 3000:
        assert_optimal(scheme, log_probs, decoded, brute_force_best(scheme, log_probs))

    spans = scheme.entities(decoded)
    assert spans == sorted(spans)
    previous_end = 0
    for start, end, label, score in spans:
        assert previous_end <= start < end <= n
        assert label in scheme.labels
        assert score == 1.0
        previous_end = end
    assert encode(scheme, spans, n) == [scheme.tags[i] for i in decoded]


def test_exhaustive_small_cases_match_brute_force():
    rng = np.random.default_rng(7)
    for scheme in SMALL_SCHEMES:
        size = len(scheme.tags)
        for n in range(1, 5 if size <= 5 else 4):
            for _ in range(5):
                log_probs = np.log(rng.dirichlet(np.ones(size), size=n))
                decoded = scheme.decode(log_probs)
                assert well_formed(scheme, decoded.tolist())
                assert math.isclose(
                    path_score(log_probs, decoded), brute_force_best(scheme, log_probs)
                )


# --- entities ----------------------------------------------------------------------------


def test_entities_with_scores():
    scheme = TagScheme.from_labels(["LOC", "PER"])
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC"]
    ids = ids_of(scheme, tags)
    probs = np.full((len(tags), len(scheme.tags)), 0.01)
    probs[np.arange(len(tags)), ids] = [0.9, 0.7, 0.99, 0.6, 0.8, 0.5, 0.2]
    spans = scheme.entities(ids, probs)
    assert [(s, e, label) for s, e, label, _ in spans] == [
        (0, 2, "PER"),
        (3, 4, "LOC"),
        (4, 7, "LOC"),
    ]
    assert [score for *_, score in spans] == pytest.approx([0.8, 0.6, 0.5])
    assert all(score == 1.0 for *_, score in scheme.entities(ids))


@pytest.mark.parametrize(
    ("name", "tags", "expected"),
    [
        ("BIOES", ["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "S-LOC"], [(0, 1), (1, 4), (5, 6)]),
        ("BILOU", ["B-PER", "L-PER", "U-PER", "O", "U-LOC"], [(0, 2), (2, 3), (4, 5)]),
        ("IOB1", ["I-PER", "I-LOC"], [(0, 1), (1, 2)]),
        ("IOB1", ["I-PER", "B-PER"], [(0, 1), (1, 2)]),
        ("IOB1", ["O", "I-PER", "I-PER", "O", "I-PER"], [(1, 3), (4, 5)]),
        ("IOB1", ["I-LOC", "I-LOC", "B-LOC", "I-LOC"], [(0, 2), (2, 4)]),
        ("IOB2", [], []),
        ("IOB2", ["O", "O"], []),
    ],
)
def test_entity_boundaries(name, tags, expected):
    scheme = TagScheme.from_labels(["LOC", "PER"], name)
    spans = scheme.entities(ids_of(scheme, tags))
    assert [(s, e) for s, e, *_ in spans] == expected
    assert [label for _, _, label, _ in spans] == [tags[s][2:] for s, _ in expected]


def test_entities_rejects_out_of_range_ids():
    with pytest.raises(ValueError):
        TagScheme.from_labels(["PER"]).entities(np.array([0, 3]))


# --- gold conversion ---------------------------------------------------------------------

GOLD = ["U-PER", "O", "B-LOC", "I-LOC", "L-LOC", None, "U-ORG", "-", "B-PER", "L-PER", "U-PER"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "BILOU",
            ["U-PER", "O", "B-LOC", "I-LOC", "L-LOC", None, None, None, "B-PER", "L-PER", "U-PER"],
        ),  # noqa: E501
        (
            "BIOES",
            ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", None, None, None, "B-PER", "E-PER", "S-PER"],
        ),  # noqa: E501
        (
            "IOB2",
            ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC", None, None, None, "B-PER", "I-PER", "B-PER"],
        ),  # noqa: E501
        # IOB1: B only after an adjacent entity of the same type; unknown context -> -1.
        (
            "IOB1",
            ["I-PER", "O", "I-LOC", "I-LOC", "I-LOC", None, None, None, None, "I-PER", "B-PER"],
        ),  # noqa: E501
    ],
)
def test_tag_ids_from_biluo(name, expected):
    scheme = TagScheme.from_labels(["LOC", "PER"], name)
    got = scheme.tag_ids_from_biluo(GOLD)
    assert got.dtype == np.int64
    assert got.tolist() == [-1 if t is None else scheme.tags.index(t) for t in expected]


def test_tag_ids_from_biluo_iob1_start_and_after_outside():
    scheme = TagScheme.from_labels(["PER"], "IOB1")
    got = scheme.tag_ids_from_biluo(["B-PER", "L-PER", "O", "U-PER"])
    assert [scheme.tags[i] for i in got] == ["I-PER", "I-PER", "O", "I-PER"]


def test_tag_ids_from_biluo_rejects_non_biluo():
    with pytest.raises(ValueError, match="E-PER"):
        TagScheme.from_labels(["PER"]).tag_ids_from_biluo(["E-PER"])
    assert TagScheme.from_labels(["PER"]).tag_ids_from_biluo([]).shape == (0,)


@pytest.mark.parametrize("scheme_name", SCHEMES)
def test_entities_never_cross_segment_starts(scheme_name):
    scheme = TagScheme.from_labels(["PER"], scheme_name)
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 15))
        log_probs = np.log(rng.dirichlet(np.ones(len(scheme.tags)), size=n))
        starts = rng.random(n) < 0.3
        tag_ids = scheme.decode(log_probs, starts)
        assert scheme.is_valid(tag_ids)
        for start, end, _, _ in scheme.entities(tag_ids, segment_starts=starts):
            assert not starts[start + 1 : end].any()
        cuts = np.flatnonzero(starts[1:]) + 1
        for part in np.split(tag_ids, cuts):
            assert scheme.is_valid(part)


@st.composite
def segmented_scores(draw):
    """Scores with any floats the model might emit (huge, infinite, NaN) and any segment
    starts, as sentence starts reach `decode` and `entities` from the component."""
    scheme = draw(st.sampled_from(SMALL_SCHEMES))
    n = draw(st.integers(0, 20))
    finite = draw(st.booleans())
    elements = (
        st.floats(-1e4, 1e4, allow_nan=False)
        if finite
        else st.one_of(st.floats(allow_nan=True), st.sampled_from([NEG_INF, math.inf, math.nan]))
    )
    scores = draw(arrays(np.float64, (n, len(scheme.tags)), elements=elements))
    starts = draw(arrays(np.bool_, (n,)))
    return scheme, scores, starts, finite


def test_decode_scores_whose_path_sum_would_overflow_stays_well_formed():
    """Finite scores near the float maximum: summed along a path they overflow to inf, and inf
    plus a forbidden transition is NaN, which argmax picked (found by the property below)."""
    scheme = TagScheme.from_tags(("O", "B-X", "I-X", "B-Y", "I-Y"))
    scores = np.full((18, 5), 1.05746655e307)
    scores[7, :2] = 0.0
    decoded = scheme.decode(scores, np.zeros(18, dtype=bool))
    assert well_formed(scheme, decoded.tolist())


@settings(max_examples=500, deadline=None)
@given(segmented_scores())
def test_decode_any_scores_within_segments(case):
    scheme, scores, starts, finite = case
    decoded = scheme.decode(scores, starts)
    n = len(scores)
    assert decoded.shape == (n,) and decoded.dtype == np.int64
    assert ((0 <= decoded) & (decoded < len(scheme.tags))).all()
    cuts = np.flatnonzero(starts[1:]) + 1
    parts = np.split(decoded, cuts)
    assert all(well_formed(scheme, part.tolist()) for part in parts)
    if finite:  # the best well-formed path of each segment, independently of the others
        best = sum(reference_best(scheme, part) for part in np.split(scores, cuts))
        assert math.isclose(path_score(scores, decoded), best, rel_tol=1e-9, abs_tol=1e-6)
    probs = np.exp(scores - scores.max(axis=1, keepdims=True)) if finite and n else None
    previous_end = 0
    for start, end, label, score in scheme.entities(decoded, probs, starts):
        assert previous_end <= start < end <= n and label in scheme.labels
        assert not starts[start + 1 : end].any()
        assert 0.0 <= score <= 1.0  # 0 only where a probability underflows
        previous_end = end


def test_entity_score_of_an_unlikely_tag_after_many_tokens_stays_positive():
    """Regression: scores were differences of a running total of probabilities, which
    cancelled a 1e-16 probability after five certain tokens to exactly 0."""
    scheme = TagScheme.from_labels(["X"])
    ids = ids_of(scheme, ["O"] * 5 + ["B-X"])
    probs = np.ones((6, len(scheme.tags)))
    probs[5, scheme.tags.index("B-X")] = 1e-16
    ((start, end, label, score),) = scheme.entities(ids, probs)
    assert (start, end, label) == (5, 6, "X")
    assert score == pytest.approx(1e-16, rel=1e-9, abs=0)


def test_tags_for_head_keeps_a_matching_head_and_builds_the_others():
    from spacy_bert_ner.tags import tags_for_head

    iob2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert tags_for_head(iob2, {"LOC", "PER"}, None) is None  # same types, any order
    assert tags_for_head(iob2, set(), None) is None  # nothing asked for
    assert tags_for_head(iob2, {"PER"}, None) == ("O", "B-PER", "I-PER")
    assert tags_for_head(["O", "B-PER", "I-PER"], {"PER"}, "IOB1") is None  # read as IOB1
    assert tags_for_head(None, {"ORG"}, None) == ("O", "B-ORG", "I-ORG")  # a new head: IOB2
