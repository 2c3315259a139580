"""Tag strings (`tags.names`): scheme detection and names, tags that fit no scheme, and IOB1
to IOB2."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_bert_ner.errors import TagSchemeError
from spacy_bert_ner.tags import SCHEMES, TagScheme, canonical_scheme, iob1_to_iob2
from tests.tags.tag_rules import ids_of, well_formed

# --- detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "IOB2"),
        (["B-PER", "O", "I-PER"], "IOB2"),
        (["O", "B-PER", "I-PER", "E-PER", "S-PER"], "BIOES"),
        (["O", "B-PER", "I-PER", "L-PER", "U-PER"], "BILOU"),
        (["O"], "IOB2"),
    ],
)
def test_detects_scheme(tags, expected):
    scheme = TagScheme.from_tags(tags)
    assert scheme.name == expected
    assert scheme.tags == tuple(tags)
    assert scheme.outside == tags.index("O")
    assert scheme.labels == tuple(sorted({t[2:] for t in tags if t != "O"}))


def test_labels_are_sorted_entity_types():
    scheme = TagScheme.from_tags(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"])
    assert scheme.labels == ("LOC", "MISC", "PER")


def test_iob1_only_by_override():
    tags = ["O", "B-PER", "I-PER"]
    assert TagScheme.from_tags(tags).name == "IOB2"
    assert TagScheme.from_tags(tags, scheme="IOB1").name == "IOB1"


def test_iob1_override_accepts_types_without_b():
    scheme = TagScheme.from_tags(["O", "I-PER", "B-LOC", "I-LOC"], scheme="iob1")
    assert scheme.labels == ("LOC", "PER")
    with pytest.raises(TagSchemeError, match="B-PER"):
        TagScheme.from_tags(["O", "I-PER", "B-LOC", "I-LOC"])


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [("bioes", "BIOES"), ("IOBES", "BIOES"), ("biluo", "BILOU"), (" Bilou ", "BILOU")],
)
def test_scheme_names_are_case_insensitive_with_aliases(given_name, expected):
    assert canonical_scheme(given_name) == expected
    assert TagScheme.from_labels(["PER"], given_name).name == expected


def test_unknown_scheme_name():
    with pytest.raises(TagSchemeError, match="IOB3") as info:
        TagScheme.from_tags(["O", "B-PER", "I-PER"], scheme="IOB3")
    assert all(name in str(info.value) for name in SCHEMES)


@pytest.mark.parametrize(
    ("tags", "scheme", "named"),
    [
        (["LABEL_0", "LABEL_1"], None, ["LABEL_0", "LABEL_1"]),
        (["O", "PER", "LOC"], None, ["PER", "LOC"]),
        (["O", "B_PER", "I_PER"], None, ["B_PER", "I_PER"]),
        (["B-PER", "I-PER"], None, ["B-PER", "I-PER"]),  # no O
        (["O", "O", "B-PER", "I-PER"], None, ["O"]),  # two O
        (["O", "B-PER", "I-PER", "B-LOC"], None, ["B-LOC", "I-LOC"]),
        (["O", "B-PER", "I-PER", "E-PER"], None, ["S-PER"]),
        (["O", "B-PER", "I-PER", "E-PER", "S-PER", "U-LOC", "L-LOC"], None, ["S-PER", "U-LOC"]),
        (["O", "B-PER", "I-PER", "B-PER"], None, ["B-PER"]),
        (["O", "B-PER", "I-PER"], "BIOES", ["E-PER", "S-PER"]),
        (["O", "B-PER", "I-PER", "E-PER", "S-PER"], "IOB2", ["E-PER", "S-PER"]),
        (["O", "B-PER", "I-PER", "E-PER", "S-PER"], "BILOU", ["E-PER", "S-PER"]),
    ],
)
def test_rejects_tags_that_fit_no_scheme(tags, scheme, named):
    with pytest.raises(TagSchemeError) as info:
        TagScheme.from_tags(tags, scheme=scheme)
    message = str(info.value)
    for label in named:
        assert repr(label) in message
    assert all(name in message for name in SCHEMES)
    assert isinstance(info.value, ValueError)


def test_from_labels_order():
    assert TagScheme.from_labels(["PER", "LOC", "PER"]).tags == (
        "O",
        "B-LOC",
        "I-LOC",
        "B-PER",
        "I-PER",
    )
    assert TagScheme.from_labels(["PER", "LOC"], "BIOES").tags == (
        "O",
        *("B-LOC", "I-LOC", "E-LOC", "S-LOC"),
        *("B-PER", "I-PER", "E-PER", "S-PER"),
    )
    assert TagScheme.from_labels(["ORG"], "BILUO").tags == ("O", "B-ORG", "I-ORG", "L-ORG", "U-ORG")
    assert TagScheme.from_labels([]).tags == ("O",)


def test_round_trips_through_from_tags():
    for name in SCHEMES:
        scheme = TagScheme.from_labels(["PER", "LOC"], name)
        assert TagScheme.from_tags(scheme.tags, scheme=name) == scheme


# --- IOB1 -> IOB2 ------------------------------------------------------------------------


def test_iob1_to_iob2():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "I-ORG", "I-ORG", "B-ORG", "I-ORG", "B-MISC", "O"]
    assert iob1_to_iob2(iob1) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-ORG",
        "I-ORG",
        "B-ORG",
        "I-ORG",
        "B-MISC",
        "O",
    ]
    assert iob1_to_iob2([]) == []


def test_iob1_to_iob2_rejects_other_tags():
    with pytest.raises(TagSchemeError, match="S-PER"):
        iob1_to_iob2(["O", "S-PER"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-X", "I-X", "B-Y", "I-Y"]), max_size=12))
def test_iob1_to_iob2_keeps_conlleval_entities(tags):
    """Converting must not change which entities an IOB1 reader sees, and yields valid IOB2."""
    iob1 = TagScheme.from_labels(["X", "Y"], "IOB1")
    iob2 = TagScheme.from_labels(["X", "Y"], "IOB2")
    converted = iob1_to_iob2(tags)
    assert well_formed(iob2, ids_of(iob2, converted).tolist())
    assert iob2.entities(ids_of(iob2, converted)) == iob1.entities(ids_of(iob1, tags))
