"""What any input does to bert_ner: long and 100,000-word docs, whitespace and control
tokens, nasty strings and lone surrogates, docs of another vocab, existing entities kept,
and any unicode text or doc (hypothesis): no token lost, entities well formed."""

import numpy as np
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, Span

from spacy_bert_ner import replace_lone_surrogates
from spacy_bert_ner.models.token_classifier import architecture_of

from ..conftest import TINY_TAGS
from ..nasty_strings import LONE_SURROGATES, NASTY_STRINGS
from .conftest import TEXT, ents


def test_long_doc_is_labelled_to_its_last_token(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert), "max_length": 16}})
    words = ["angela", "merkel", "met", "paris", "."] * 60  # 300 pieces: ~30 windows of 14
    doc = nlp(Doc(nlp.vocab, words=words))
    scores = nlp.get_pipe("bert_ner").predict([Doc(nlp.vocab, words=words)])[0]
    assert scores.shape == (300, 9)
    # Rows come from real windows: the same word gets different logits in different contexts.
    assert len({tuple(row.round(4)) for row in scores[-10:]}) > 1
    assert doc.ents and doc.ents[-1].end > 290


def test_batches_return_docs_in_input_order(nlp):
    texts = [TEXT, "berlin", "the " * 70, "", "Paris and Berlin"]
    one_by_one = [ents(nlp(t)) for t in texts]
    assert [ents(d) for d in nlp.pipe(texts, batch_size=3)] == one_by_one


def test_whitespace_and_control_tokens_are_never_entities(nlp):
    doc = nlp(Doc(nlp.vocab, words=["angela", "\u200b", "merkel", "\n", "berlin", "\x07"]))
    for ent in doc.ents:
        assert all(token.text.strip() and token.text not in ("\u200b", "\x07") for token in ent)


def has_wordpiece(pipe, token) -> bool:
    backend = architecture_of(pipe.model).tokenizer.backend_tokenizer
    return bool(backend.encode([token.text], is_pretokenized=True, add_special_tokens=False).ids)


def assert_sound(pipe, doc, text, n_tokens, kept=()):
    """What annotation must hold for any input: the text and every token kept, every token
    labelled (B, I or O), entities in bounds, disjoint, inside one sentence, made of tokens
    that have wordpieces, scored; entities in `kept` (start, end, label) still there."""
    assert doc.text == text
    assert len(doc) == n_tokens
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
    previous_end = 0
    for ent in doc.ents:
        assert previous_end <= ent.start < ent.end <= len(doc)
        previous_end = ent.end
        if (ent.start, ent.end, ent.label_) in kept:
            continue
        assert ent.label_ in pipe.labels
        assert 0.0 < ent._.bert_ner_score <= 1.0
        assert all(has_wordpiece(pipe, token) for token in ent)
        assert not any(token.is_sent_start for token in ent[1:])
    assert set(kept) <= {(ent.start, ent.end, ent.label_) for ent in doc.ents}


@pytest.mark.parametrize("name", sorted(NASTY_STRINGS))
def test_nasty_strings_lose_no_token(nlp, name):
    text = NASTY_STRINGS[name]
    pipe = nlp.get_pipe("bert_ner")
    doc = nlp(text)
    assert_sound(pipe, doc, text, len(nlp.make_doc(text)))
    scores = pipe.predict([nlp.make_doc(text)])[0]
    assert scores.shape == (len(doc), len(TINY_TAGS))
    assert np.isfinite(scores).all()


@pytest.fixture(scope="module")
def trained(trained_tiny):
    return spacy.load(trained_tiny)


@pytest.mark.parametrize("text", LONE_SURROGATES.values(), ids=list(LONE_SURROGATES))
def test_spacy_refuses_lone_surrogates_before_any_component(trained, text):
    """Why the component never sees one (README, `spacy_bert_ner.text`): if spaCy ever takes
    them, the wordpiece step gets them and this must be revisited."""
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        trained(text)


@pytest.mark.parametrize("name", sorted(LONE_SURROGATES))
def test_replaced_lone_surrogates_are_tokens_without_wordpiece_and_change_no_other_tag(
    trained, name
):
    """A replaced surrogate is a U+FFFD token, which BERT's tokenizer drops: it is O and every
    other token is tagged as beside any token without a wordpiece (a zero-width space in its
    place), from the same logits as with it removed."""
    pipe = trained.get_pipe("bert_ner")
    text = replace_lone_surrogates(LONE_SURROGATES[name])
    assert len(text) == len(LONE_SURROGATES[name])  # one for one: offsets unchanged
    doc = trained(text)
    assert_sound(pipe, doc, text, len(trained.make_doc(text)))
    bad = [token.i for token in doc if token.text.strip("\ufffd") == ""]
    assert bad and all(not has_wordpiece(pipe, doc[i]) and doc[i].ent_iob_ == "O" for i in bad)
    others = [token.i for token in doc if token.i not in bad]

    def words(replacement: str | None) -> Doc:
        kept = [(t.text if t.i in others else replacement, t.whitespace_) for t in doc]
        kept = [(word, space) for word, space in kept if word is not None]
        return Doc(trained.vocab, words=[w for w, _ in kept], spaces=[bool(s) for _, s in kept])

    control = trained(words("\u200b"))
    assert [t.ent_iob_ + t.ent_type_ for t in control] == [t.ent_iob_ + t.ent_type_ for t in doc]
    scores = pipe.predict([trained.make_doc(text), words(None)])
    assert np.array_equal(scores[0][others], scores[1])


def test_a_batch_with_replaced_surrogates_gives_every_doc(trained):
    """1,000 texts, 10 of them with lone surrogates: `nlp.pipe` gives 1,000 docs, each the doc
    of its text alone."""
    bad = list(LONE_SURROGATES.values()) * 2
    texts = [f"Angela Merkel met Macron in Paris on day {i}." for i in range(990)]
    for n, text in enumerate(bad):
        texts.insert(n * 100 + 7, text)
    docs = list(trained.pipe(map(replace_lone_surrogates, texts), batch_size=64))
    assert [doc.text for doc in docs] == [replace_lone_surrogates(text) for text in texts]
    for n in range(len(bad)):
        alone = trained(docs[n * 100 + 7].text)
        assert [(e.start, e.end, e.label_) for e in docs[n * 100 + 7].ents] == [
            (e.start, e.end, e.label_) for e in alone.ents
        ]


def test_100k_word_doc_is_labelled_to_its_last_token(nlp):
    words = ["angela", "merkel", "met", "macron", "in", "paris", ".", "\n", "berlin"] * 11_112
    doc = nlp(Doc(nlp.vocab, words=words))
    assert len(doc) == len(words) > 100_000
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
    assert doc.ents[-1].start > len(words) - 20, "no entity near the end: tokens were dropped"
    assert all(token.text != "\n" for ent in doc.ents for token in ent)


def test_doc_from_another_vocab_and_tokenizer(nlp):
    other = spacy.blank("de")
    doc = Doc(other.vocab, words=["Angela Merkel", "traf", "Macron,", "in", "Berlin!", "\u200b"])
    text = doc.text
    annotated = nlp.get_pipe("bert_ner")(doc)
    assert_sound(nlp.get_pipe("bert_ner"), annotated, text, 6)
    assert annotated.vocab is other.vocab and annotated.ents


def test_keeping_existing_entities_labels_every_other_token(tiny_bert):
    """Regression: with overwrite_ents = false, tokens without annotation stayed unlabelled
    ("") after the component ran, instead of "O"."""
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "overwrite_ents": False})
    doc = nlp.make_doc("the the angela merkel met macron in paris")
    doc.set_ents([Span(doc, 0, 1, "GPE")], default="unmodified")
    doc = pipe(doc)
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
    assert (doc.ents[0].start, doc.ents[0].end, doc.ents[0].label_) == (0, 1, "GPE")


@settings(
    deadline=None, max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_any_unicode_text_gives_well_formed_entities(nlp, text):
    doc = nlp(text)
    assert_sound(nlp.get_pipe("bert_ner"), doc, text, len(nlp.make_doc(text)))
    for ent in doc.ents:
        assert ent[0].text.strip() and ent[-1].text.strip()


@pytest.fixture(scope="module")
def windowed(tiny_bert):
    """Pipelines with 16-piece windows (several per doc), replacing or keeping entities."""
    pipes = {}
    for overwrite in (True, False):
        nlp = spacy.blank("en")
        model = {"name": str(tiny_bert), "max_length": 16, "max_batch_pieces": 64}
        nlp.add_pipe("bert_ner", config={"model": model, "overwrite_ents": overwrite})
        pipes[overwrite] = nlp.get_pipe("bert_ner")
    return pipes


WORD = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["angela", "merkel", "paris", "berlin", " ", "\n", "\u200b", "a" * 200]),
)


@st.composite
def docs_with_existing_entities(draw):
    """A doc of any words (as another tokenizer would make them), with any spaces and
    sentence starts, and some entities set before bert_ner runs."""
    words = draw(st.lists(WORD, max_size=60))
    spaces = draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    starts = draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    cuts = sorted(draw(st.sets(st.integers(0, len(words)), max_size=6)))
    existing = [(s, e, "GPE") for s, e in zip(cuts[::2], cuts[1::2], strict=False) if s < e]
    return words, spaces, starts, existing


@settings(
    deadline=None, max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=docs_with_existing_entities(), overwrite=st.booleans())
def test_any_doc_with_existing_entities_loses_no_token(windowed, case, overwrite):
    words, spaces, starts, existing = case
    pipe = windowed[overwrite]
    doc = Doc(pipe.vocab, words=words, spaces=spaces, sent_starts=starts or None)
    doc.set_ents([Span(doc, s, e, label) for s, e, label in existing], default="unmodified")
    text = doc.text
    scores = pipe.predict([doc])[0]
    assert scores.shape == (len(words), len(TINY_TAGS)) and np.isfinite(scores).all()
    doc = pipe(doc)
    assert [token.text for token in doc] == words
    assert_sound(pipe, doc, text, len(words), kept=() if overwrite else existing)
