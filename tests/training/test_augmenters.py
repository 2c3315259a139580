"""Case variants, mention replacement and entity masking: the changed copies keep their
annotations, at the asked-for rates."""

import random

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import registry

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.training.augmenters import (
    create_case_augmenter,
    create_entity_masking,
    create_mention_replacement,
)

WORDS = ["Angela", "Merkel", "visited", "Paris", ".", "She", "left", "."]
ENTS = ["B-PER", "I-PER", "O", "B-LOC", "O", "O", "O", "O"]
STARTS = [True, False, False, False, False, True, False, False]


def example(nlp: spacy.Language) -> Example:
    gold = Doc(nlp.vocab, words=WORDS, ents=ENTS, sent_starts=STARTS)
    return Example(Doc(nlp.vocab, words=WORDS), gold)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"lower": 1.0}, ["angela", "merkel", "visited", "paris", ".", "she", "left", "."]),
        ({"upper": 1.0}, ["ANGELA", "MERKEL", "VISITED", "PARIS", ".", "SHE", "LEFT", "."]),
        ({"title": 1.0}, ["Angela", "Merkel", "Visited", "Paris", ".", "She", "Left", "."]),
        ({}, WORDS),
    ],
)
def test_a_variant_changes_the_text_and_keeps_entities_and_sentences(setting, expected):
    nlp = spacy.blank("en")
    (changed,) = create_case_augmenter(**setting)(nlp, example(nlp))
    assert [t.text for t in changed.predicted] == expected
    assert [t.text for t in changed.reference] == expected
    assert [(e.start, e.end, e.label_) for e in changed.reference.ents] == [
        (0, 2, "PER"),
        (3, 4, "LOC"),
    ]
    assert [t.is_sent_start for t in changed.reference] == STARTS


def test_each_variant_comes_at_its_rate():
    nlp = spacy.blank("en")
    augment = create_case_augmenter(lower=0.2, upper=0.1, title=0.3)
    random.seed(0)
    firsts = [next(augment(nlp, example(nlp))).predicted[2].text for _ in range(4000)]
    shares = {word: firsts.count(word) / len(firsts) for word in set(firsts)}
    expected = {"visited": 0.2, "VISITED": 0.1, "Visited": 0.3}
    assert shares == pytest.approx({**expected, "visited": 0.2 + 0.4}, abs=0.03)


@pytest.mark.parametrize("setting", [{"lower": -0.1}, {"upper": 1.5}, {"lower": 0.6, "title": 0.6}])
def test_rates_outside_0_1_are_refused(setting):
    with pytest.raises(BertNERError, match="case_variants.v1"):
        create_case_augmenter(**setting)


def test_sentence_runs_apply_the_augmenter_to_each_run(tmp_path):
    nlp = spacy.blank("en")
    path = tmp_path / "train.spacy"
    DocBin(docs=[example(nlp).reference]).to_disk(path)
    config = {
        "corpus": {
            "@readers": "spacy_bert_ner.SentenceRuns.v1",
            "path": str(path),
            "max_words": 5,
            "augmenter": {"@augmenters": "spacy_bert_ner.case_variants.v1", "upper": 1.0},
        }
    }
    runs = list(registry.resolve(config)["corpus"](nlp))
    assert [[t.text for t in run.reference] for run in runs] == [
        ["ANGELA", "MERKEL", "VISITED", "PARIS", "."],
        ["SHE", "LEFT", "."],
    ]
    assert [e.text for e in runs[0].reference.ents] == ["ANGELA MERKEL", "PARIS"]


# --- mention replacement ------------------------------------------------------------------


def pool_corpus(nlp: spacy.Language, path) -> None:
    """Mentions to draw from: PER "Ada Lovelace" (twice: drawn as one), LOC "New York"."""
    words = ["Ada", "Lovelace", "met", "Ada", "Lovelace", "in", "New", "York"]
    ents = ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    DocBin(docs=[Doc(nlp.vocab, words=words, ents=ents)]).to_disk(path)


def test_mention_replacement_swaps_names_and_keeps_context_and_sentences(tmp_path):
    nlp = spacy.blank("en")
    pool_corpus(nlp, tmp_path / "pool.spacy")
    augment = create_mention_replacement(tmp_path / "pool.spacy", probability=1.0)
    (changed,) = augment(nlp, example(nlp))
    words = ["Ada", "Lovelace", "visited", "New", "York", ".", "She", "left", "."]
    assert [t.text for t in changed.reference] == words == [t.text for t in changed.predicted]
    assert [(e.text, e.label_) for e in changed.reference.ents] == [
        ("Ada Lovelace", "PER"),
        ("New York", "LOC"),
    ]
    starts = [True, False, False, False, False, False, True, False, False]
    assert [t.is_sent_start for t in changed.reference] == starts
    assert not changed.predicted.has_annotation("ENT_IOB")  # the words only, to predict on


def test_mention_replacement_comes_at_its_rate_and_from_distinct_mentions(tmp_path):
    nlp = spacy.blank("en")
    pool_corpus(nlp, tmp_path / "pool.spacy")
    original = example(nlp)
    assert next(create_mention_replacement(tmp_path / "pool.spacy", 0.0)(nlp, original)) is original
    augment = create_mention_replacement(tmp_path / "pool.spacy", probability=0.3)
    random.seed(0)
    firsts = [next(augment(nlp, example(nlp))).reference[0].text for _ in range(2000)]
    assert firsts.count("Ada") / len(firsts) == pytest.approx(0.3, abs=0.03)
    assert set(firsts) == {"Ada", "Angela"}
    # A type the pool lacks (MISC here) is never replaced.
    gold = Doc(nlp.vocab, words=["the", "Euro"], ents=["O", "B-MISC"])
    (same,) = augment(nlp, Example(Doc(nlp.vocab, words=["the", "Euro"]), gold))
    assert [t.text for t in same.reference] == ["the", "Euro"]


def test_mention_replacement_refusals(tmp_path):
    nlp = spacy.blank("en")
    with pytest.raises(BertNERError, match="probability must be in 0..1"):
        create_mention_replacement(tmp_path / "pool.spacy", probability=1.5)
    with pytest.raises(BertNERError, match="no corpus path"):
        create_mention_replacement(None)
    DocBin(docs=[Doc(nlp.vocab, words=["no", "names"])]).to_disk(tmp_path / "empty.spacy")
    augment = create_mention_replacement(tmp_path / "empty.spacy")
    with pytest.raises(BertNERError, match="holds no entities"):
        next(augment(nlp, example(nlp)))


def test_mention_replacement_is_registered_for_configs(tmp_path):
    nlp = spacy.blank("en")
    pool_corpus(nlp, tmp_path / "pool.spacy")
    DocBin(docs=[example(nlp).reference]).to_disk(tmp_path / "train.spacy")
    augmenter = {"@augmenters": "spacy_bert_ner.mention_replacement.v1",
                 "path": str(tmp_path / "pool.spacy"), "probability": 1.0}  # fmt: skip
    reader = {"@readers": "spacy_bert_ner.SentenceRuns.v1", "path": str(tmp_path / "train.spacy")}
    config = {"corpus": {**reader, "augmenter": augmenter}}
    (run,) = registry.resolve(config)["corpus"](nlp)
    assert [e.text for e in run.reference.ents] == ["Ada Lovelace", "New York"]


def test_entity_masking_hides_the_names_and_keeps_entities_context_and_sentences():
    nlp = spacy.blank("en")
    (masked,) = create_entity_masking(probability=1.0)(nlp, example(nlp))
    words = ["[MASK]", "[MASK]", "visited", "[MASK]", ".", "She", "left", "."]
    assert [t.text for t in masked.reference] == words == [t.text for t in masked.predicted]
    assert [(e.start, e.end, e.label_) for e in masked.reference.ents] == [
        (0, 2, "PER"),
        (3, 4, "LOC"),
    ]
    assert [t.is_sent_start for t in masked.reference] == STARTS


def test_entity_masking_comes_at_its_rate_per_entity():
    nlp = spacy.blank("en")
    original = example(nlp)
    assert next(create_entity_masking(probability=0.0)(nlp, original)) is original
    augment = create_entity_masking(probability=0.25, mask="<mask>")
    random.seed(0)
    changed = [next(augment(nlp, example(nlp))).reference for _ in range(2000)]
    firsts = [doc[0].text for doc in changed]
    assert firsts.count("<mask>") / len(firsts) == pytest.approx(0.25, abs=0.03)
    both = sum(doc[0].text == doc[3].text == "<mask>" for doc in changed)
    assert both / len(changed) == pytest.approx(0.25**2, abs=0.02)  # each entity drawn alone


@pytest.mark.parametrize(("probability", "mask"), [(1.5, "[MASK]"), (0.1, ""), (0.1, "two words")])
def test_entity_masking_refusals(probability, mask):
    with pytest.raises(BertNERError, match="entity_masking.v1"):
        create_entity_masking(probability=probability, mask=mask)


def test_entity_masking_is_registered_for_configs():
    augmenter = {"@augmenters": "spacy_bert_ner.entity_masking.v1", "probability": 1.0}
    augment = registry.resolve({"augmenter": augmenter})["augmenter"]
    nlp = spacy.blank("en")
    (masked,) = augment(nlp, example(nlp))
    assert masked.reference[0].text == "[MASK]"
