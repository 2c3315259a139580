"""Data for continual-learning runs: hiding a type, sampling sentences, pseudo-labels."""

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.experiments.continual_data import (
    drop_types,
    keep_types,
    merge_pseudo_labels,
    prepare_continual_data,
    sample_sentences_with,
)

WORDS = ["Angela", "Merkel", "met", "German", "fans", "in", "Paris", "."]
TAGS = ["B-PER", "I-PER", "O", "B-MISC", "O", "O", "B-LOC", "O"]


def labelled(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


@pytest.fixture
def doc():
    return Doc(spacy.blank("en").vocab, words=WORDS, ents=TAGS)


def test_drop_and_keep_types_copy_with_the_other_tokens_outside(doc):
    (without,) = drop_types([doc], ["MISC"])
    assert labelled(without) == [(0, 2, "PER"), (6, 7, "LOC")]
    assert without[3].ent_iob_ == "O"
    (only,) = keep_types([doc], ["MISC"])
    assert labelled(only) == [(3, 4, "MISC")]
    assert [t.ent_iob_ for t in only] == ["O", "O", "O", "B", "O", "O", "O", "O"]
    assert labelled(doc) == [(0, 2, "PER"), (3, 4, "MISC"), (6, 7, "LOC")]  # untouched


def test_sample_sentences_with_a_type_is_seeded_and_bounded():
    vocab = spacy.blank("en").vocab
    words = ["Paris", "."] + ["German", "fans", "."] * 5
    tags = ["B-LOC", "O"] + ["B-MISC", "O", "O"] * 5
    sent_starts = [True, False] + [True, False, False] * 5
    doc = Doc(vocab, words=words, ents=tags, sent_starts=sent_starts)
    sample = sample_sentences_with([doc], "MISC", 3, seed=1)
    assert len(sample) == 3 and all(labelled(s) == [(0, 1, "MISC")] for s in sample)
    assert [s.text for s in sample] == [s.text for s in sample_sentences_with([doc], "MISC", 3, 1)]
    assert len(sample_sentences_with([doc], "LOC", 1, seed=0)) == 1
    with pytest.raises(BertNERError, match="only 5 sentences hold a MISC entity"):
        sample_sentences_with([doc], "MISC", 6, seed=0)


def test_pseudo_labels_fill_in_predictions_and_gold_wins_on_overlap(doc):
    (gold,) = keep_types([doc], ["MISC"])
    predicted = Doc(doc.vocab, words=WORDS, ents=["B-PER", "I-PER", "O", "B-LOC", "I-LOC",
                                                  "O", "B-LOC", "O"])  # fmt: skip
    (merged,) = merge_pseudo_labels([gold], [predicted])
    assert labelled(merged) == [(0, 2, "PER"), (3, 4, "MISC"), (6, 7, "LOC")]
    assert labelled(gold) == [(3, 4, "MISC")]  # untouched
    other = Doc(doc.vocab, words=["other", "words"])
    with pytest.raises(BertNERError, match="doc 0: predicted tokens differ"):
        merge_pseudo_labels([gold], [other])
    with pytest.raises(BertNERError, match="1 gold docs but 2 predicted"):
        merge_pseudo_labels([gold], [predicted, predicted])


def test_prepare_continual_data_from_conll(data_dir, tmp_path):
    conll = tmp_path / "conll"
    conll.mkdir()
    for name in ("eng.train", "eng.testa"):
        lines = (data_dir / "conll2003" / name).read_text(encoding="utf8").splitlines()
        (conll / name).write_text("\n".join(lines[:3000]) + "\n", encoding="utf8")
    paths = prepare_continual_data(
        conll / "eng.train", conll / "eng.testa", tmp_path / "out", new_type="MISC", n_new=20
    )
    vocab = spacy.blank("en").vocab
    docs = {name: list(DocBin().from_disk(path).get_docs(vocab)) for name, path in paths.items()}
    for name in ("old-train", "old-dev"):
        labels = {e.label_ for d in docs[name] for e in d.ents}
        assert labels == {"PER", "LOC", "ORG"}, name
        assert all(d.has_annotation("SENT_START") for d in docs[name])
    new = docs["new-train"]
    assert len(new) == 20
    assert all(d.ents and {e.label_ for e in d.ents} == {"MISC"} for d in new)
    train_sentences = {tuple(t.text for t in s) for d in docs["old-train"] for s in d.sents}
    assert all(tuple(t.text for t in d) in train_sentences for d in new)
