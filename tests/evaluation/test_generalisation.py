"""Seen/unseen scores (evaluation.generalisation) on a case counted by hand."""

import pytest
from spacy.vocab import Vocab

from spacy_bert_ner.evaluation.generalisation import print_seen_unseen, seen_unseen_scores
from spacy_bert_ner.pipeline.mentions import TrainingMentions
from tests.evaluation.test_evaluation import make_doc

VOCAB = Vocab()
SENT_1 = "Angela Merkel met Macron in Paris .".split()
SENT_2 = "Paris Hilton visited Berlin .".split()


def hand_case():
    """Training mentions: PER "Angela Merkel", LOC "Paris", ORG "Acme Corp".

    Gold: Angela Merkel PER (seen), Macron PER, Paris LOC (seen), Paris Hilton PER, Berlin LOC.
    Predicted: Angela Merkel PER and Paris LOC right (seen); Macron as ORG (a pair never seen:
    counts against unseen precision); "Paris" of "Paris Hilton" as LOC (a seen pair, wrong:
    counts against seen precision); Berlin LOC right (unseen).
    """
    train = [make_doc("Angela Merkel visited Paris with Acme Corp".split(),
                      [(0, 2, "PER"), (3, 4, "LOC"), (5, 7, "ORG")], vocab=VOCAB)]  # fmt: skip
    gold = [
        make_doc(SENT_1, [(0, 2, "PER"), (3, 4, "PER"), (5, 6, "LOC")], vocab=VOCAB),
        make_doc(SENT_2, [(0, 2, "PER"), (3, 4, "LOC")], vocab=VOCAB),
    ]
    pred = [
        make_doc(SENT_1, [(0, 2, "PER"), (3, 4, "ORG"), (5, 6, "LOC")], vocab=VOCAB),
        make_doc(SENT_2, [(0, 1, "LOC"), (3, 4, "LOC")], vocab=VOCAB),
    ]
    return TrainingMentions.from_docs(train), gold, pred


def test_seen_and_unseen_scores_counted_by_hand(capsys):
    mentions, gold, pred = hand_case()
    scores = seen_unseen_scores(gold, pred, mentions)
    seen, unseen = scores["seen"], scores["unseen"]
    # seen: gold {Merkel, Paris}; predicted seen pairs {Merkel, Paris, Paris (of Hilton)}.
    assert (seen["support"], seen["predicted"], seen["correct"]) == (2, 3, 2)
    assert seen["precision"] == pytest.approx(2 / 3) and seen["recall"] == 1.0
    assert seen["f1"] == pytest.approx(0.8)
    # unseen: gold {Macron, Paris Hilton, Berlin}; predicted unseen pairs {ORG Macron, Berlin}.
    assert (unseen["support"], unseen["predicted"], unseen["correct"]) == (3, 2, 1)
    assert unseen["precision"] == 0.5 and unseen["recall"] == pytest.approx(1 / 3)
    assert unseen["f1"] == pytest.approx(0.4)
    assert scores["unseen_share"] == pytest.approx(3 / 5)
    assert seen["per_type"]["LOC"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                       "support": 1, "predicted": 2, "correct": 1}  # fmt: skip
    assert unseen["per_type"]["ORG"]["predicted"] == 1 and unseen["per_type"]["ORG"]["f1"] == 0
    assert unseen["per_type"]["PER"]["support"] == 2 and unseen["per_type"]["PER"]["recall"] == 0
    print_seen_unseen(scores, "train.spacy")
    out = capsys.readouterr().out
    assert "unseen: 60.0% of gold entities" in out and "66.67" in out


def test_without_any_training_mention_every_entity_is_unseen():
    _, gold, pred = hand_case()
    scores = seen_unseen_scores(gold, pred, TrainingMentions())
    assert scores["seen"]["support"] == 0 and scores["seen"]["f1"] == 0.0
    assert scores["unseen"]["support"] == 5 and scores["unseen_share"] == 1.0
    assert (scores["unseen"]["predicted"], scores["unseen"]["correct"]) == (5, 3)
