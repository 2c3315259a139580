import spacy
from spacy.tokens import Span

from spacy_bert_ner.pipeline.mentions import TrainingMentions, mention_key


def _doc(nlp, text, ents):
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, start, end, label=label) for start, end, label in ents]
    return doc


def test_seen_means_same_text_and_label_with_whitespace_runs_made_one():
    nlp = spacy.blank("en")
    train = [_doc(nlp, "Bank of America lent to Acme Corp .", [(0, 3, "ORG"), (5, 7, "ORG")])]
    mentions = TrainingMentions.from_docs(train)
    test = _doc(
        nlp, "Bank of America met Acme in Paris", [(0, 3, "ORG"), (4, 5, "ORG"), (6, 7, "LOC")]
    )
    assert len(mentions) == 2
    assert [mentions.seen(ent) for ent in test.ents] == [True, False, False]
    assert not mentions.contains("Bank of America", "LOC")
    assert not mentions.contains("bank of america", "ORG")
    assert mentions.contains("Bank of\n America", "ORG")


def test_bytes_round_trip_is_equal_and_deterministic():
    mentions = TrainingMentions([mention_key("B", "ORG"), mention_key("A", "PER")])
    again = TrainingMentions([mention_key("A", "PER"), mention_key("B", "ORG")])
    assert mentions.to_bytes() == again.to_bytes()
    loaded = TrainingMentions.from_bytes(mentions.to_bytes())
    assert loaded.contains("A", "PER") and loaded.contains("B", "ORG") and len(loaded) == 2
    assert not TrainingMentions() and not TrainingMentions.from_bytes(TrainingMentions().to_bytes())


def test_union_keeps_the_mentions_of_both():
    old, new = (
        TrainingMentions([mention_key("Paris", "LOC")]),
        TrainingMentions([mention_key("ERISA", "ORG")]),
    )
    both = old | new
    assert both.contains("Paris", "LOC") and both.contains("ERISA", "ORG") and len(both) == 2
    assert len(old) == 1  # the operands are left as they were
