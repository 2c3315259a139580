"""`retention_guarded`: held-out old-domain examples are scored apart, and a checkpoint that
forgot them ranks below every one that did not."""

import spacy
from spacy.tokens import Doc
from spacy.training import Example

from spacy_bert_ner.pipeline.scoring import RETENTION, score_entities


def _example(nlp, predicted: list[str], gold: list[str], guard: dict | None = None) -> Example:
    words = ["Anna", "met", "Bob"]
    reference = Doc(nlp.vocab, words=words, ents=gold)
    if guard is not None:
        reference.user_data[RETENTION] = guard
    return Example(Doc(nlp.vocab, words=words, ents=predicted), reference)


def test_without_held_out_examples_the_scores_are_spacys() -> None:
    nlp = spacy.blank("en")
    scores = score_entities([_example(nlp, ["B-PER", "O", "O"], ["B-PER", "O", "B-PER"])])
    assert scores["ents_p"] == 1.0 and scores["ents_r"] == 0.5
    assert "retention_f" not in scores and "guarded_ents_f" not in scores


def test_held_out_examples_are_scored_apart_and_guard_the_rank() -> None:
    nlp = spacy.blank("en")
    right, half = ["B-PER", "O", "B-PER"], ["B-PER", "O", "O"]
    guard = {"start_f": 1.0, "max_forgetting": 0.01}
    in_domain = _example(nlp, half, right)
    kept = score_entities([in_domain, _example(nlp, right, right, guard)])
    assert kept["ents_r"] == 0.5  # in-domain only
    assert kept["retention_f"] == 1.0 and kept["guarded_ents_f"] == kept["ents_f"]
    forgot = score_entities([_example(nlp, right, right), _example(nlp, half, right, guard)])
    assert forgot["ents_f"] == 1.0  # best in-domain, but it lost the old domain
    assert forgot["retention_f"] < 1.0 - 0.01
    assert forgot["guarded_ents_f"] == forgot["retention_f"] - 1.0 < 0.0 < kept["guarded_ents_f"]
