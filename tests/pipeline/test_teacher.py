"""bert_ner's loss with teacher distributions on the examples: the distillation loss of
`losses` over the batch, the teacher's tags mapped to the head's columns, the gold loss
exactly at weight 0, and one-line errors for batches it cannot read."""

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.pipeline.losses import distillation_loss, log_probabilities
from spacy_bert_ner.pipeline.teacher import TEACHER_KEY, attach_teacher

from ..conftest import tiny_examples


def tiny_nlp(tiny_bert, weight: float = 0.5, temperature: float = 1.0):
    nlp = spacy.blank("en")
    config = {"distill_weight": weight, "distill_temperature": temperature}
    nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}, **config})
    examples = tiny_examples(nlp)
    nlp.initialize(lambda: examples)
    return nlp, examples


def tiny_pipe(tiny_bert, weight: float = 0.5, temperature: float = 1.0):
    nlp, examples = tiny_nlp(tiny_bert, weight, temperature)
    return nlp.get_pipe("bert_ner"), examples


def random_probs(n_tokens: int, n_tags: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(n_tags) * 0.3, size=n_tokens)
    return probs.astype(np.float16)


def teach(examples, tags, seed=0) -> list[np.ndarray]:
    probs = [random_probs(len(eg.reference), len(tags), seed + i) for i, eg in enumerate(examples)]
    for eg, p in zip(examples, probs, strict=True):
        attach_teacher(eg.reference, tags, p)
    return probs


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_get_loss_is_the_distillation_loss_over_the_batch(tiny_bert, temperature):
    pipe, examples = tiny_pipe(tiny_bert, weight=0.3, temperature=temperature)
    tags = pipe.tag_scheme.tags
    probs = teach(examples, tags)
    scores = pipe.model.predict([eg.predicted for eg in examples])
    loss, d_scores = pipe.get_loss(examples, scores)

    targets = np.concatenate([pipe._targets(eg) for eg in examples])
    expected, expected_d = distillation_loss(
        np.concatenate(scores),
        targets,
        log_probabilities(np.concatenate(probs), np),
        np.arange(len(tags)),
        0.3,
        np,
        temperature,
    )
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(np.concatenate(d_scores), expected_d, rtol=1e-12, atol=1e-15)
    assert pipe.loss_tokens == sum(len(eg.predicted) for eg in examples)


def test_the_teachers_tags_are_matched_to_the_heads_by_name(tiny_bert):
    """A teacher listing its tags in another order teaches the same thing."""
    pipe, examples = tiny_pipe(tiny_bert)
    tags = pipe.tag_scheme.tags
    probs = teach(examples, tags)
    scores = pipe.model.predict([eg.predicted for eg in examples])
    in_order = pipe.get_loss(examples, scores)
    for eg, p in zip(examples, probs, strict=True):
        attach_teacher(eg.reference, tags[::-1], p[:, ::-1])
    reversed_ = pipe.get_loss(examples, scores)
    # float32 logits: sums over the columns in another order differ in the last bits.
    assert reversed_[0] == pytest.approx(in_order[0], rel=1e-6)
    np.testing.assert_allclose(
        np.concatenate(reversed_[1]), np.concatenate(in_order[1]), rtol=1e-5, atol=1e-8
    )


def test_weight_zero_is_the_gold_loss_exactly_and_update_survives_spacys_copies(tiny_bert):
    pipe, examples = tiny_pipe(tiny_bert, weight=0.0)
    scores = pipe.model.predict([eg.predicted for eg in examples])
    gold_loss, gold_d = pipe.get_loss(examples, scores)
    teach(examples, pipe.tag_scheme.tags)
    loss, d_scores = pipe.get_loss(examples, scores)
    assert loss == gold_loss
    assert all(np.array_equal(a, b) for a, b in zip(d_scores, gold_d, strict=True))
    # Language.update copies every example; the distributions travel with the copy.
    assert all(TEACHER_KEY in eg.copy().reference.user_data for eg in examples)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_distill_weight_outside_zero_one_is_refused(tiny_bert, weight):
    nlp = spacy.blank("en")
    with pytest.raises(BertNERError, match="distill_weight must lie between 0 and 1"):
        nlp.add_pipe(
            "bert_ner", config={"model": {"name": str(tiny_bert)}, "distill_weight": weight}
        )


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_distill_temperature_not_above_zero_is_refused(tiny_bert, temperature):
    nlp = spacy.blank("en")
    with pytest.raises(BertNERError, match="distill_temperature must be above 0"):
        nlp.add_pipe(
            "bert_ner",
            config={"model": {"name": str(tiny_bert)}, "distill_temperature": temperature},
        )


def test_a_batch_mixing_examples_with_and_without_teachers_is_refused(tiny_bert):
    pipe, examples = tiny_pipe(tiny_bert)
    teach(examples[:2], pipe.tag_scheme.tags)
    scores = pipe.model.predict([eg.predicted for eg in examples])
    with pytest.raises(BertNERError, match="'paris and berlin met merkel' has no teacher"):
        pipe.get_loss(examples, scores)


def test_a_teacher_tag_the_head_lacks_is_refused(tiny_bert):
    pipe, examples = tiny_pipe(tiny_bert)
    tags = [*pipe.tag_scheme.tags, "B-FOOD"]
    teach(examples, tags)
    scores = pipe.model.predict([eg.predicted for eg in examples])
    with pytest.raises(
        BertNERError,
        match=r"bert_ner: distillation: the head lacks the tags \['B-FOOD'\] that the teachers",
    ):
        pipe.get_loss(examples, scores)


def test_teacher_rows_for_other_tokens_than_the_predicted_docs_are_refused(tiny_bert):
    pipe, _ = tiny_pipe(tiny_bert)
    vocab = pipe.vocab
    reference = Doc(vocab, words=["the", "of", "and"], ents=["O", "O", "O"])
    example = Example(Doc(vocab, words=["the of", "and"]), reference)  # same text, 2 tokens
    teach([example], pipe.tag_scheme.tags)
    scores = pipe.model.predict([example.predicted])
    with pytest.raises(BertNERError, match="cover 3 tokens, its predicted doc has 2"):
        pipe.get_loss([example], scores)


def test_attach_refuses_rows_that_do_not_fit_the_doc(tiny_bert):
    doc = Doc(spacy.blank("en").vocab, words=["the", "of"])
    with pytest.raises(BertNERError, match=r"shape \(3, 2\) for a doc of 2 tokens and 2 tags"):
        attach_teacher(doc, ["O", "B-PER"], np.zeros((3, 2)))


def test_language_update_reads_the_teachers(tiny_bert):
    """Through `Language.update` (which copies every example): at weight 1, a teacher sure of
    the gold tags costs what the gold does, a uniform one does not."""
    nlp, examples = tiny_nlp(tiny_bert, weight=1.0)
    pipe = nlp.get_pipe("bert_ner")
    tags = pipe.tag_scheme.tags

    def update_loss() -> float:
        fix_random_seed(0)  # the same dropout masks; a zero learning rate keeps the weights
        return nlp.update(examples, sgd=Adam(0.0), losses={})["bert_ner"]

    gold_loss = update_loss()
    for eg in examples:
        sure = np.eye(len(tags))[pipe._targets(eg)]
        attach_teacher(eg.reference, tags, sure)
    assert update_loss() == pytest.approx(gold_loss, rel=1e-6)
    for eg in examples:
        attach_teacher(eg.reference, tags, np.full((len(eg.reference), len(tags)), 1 / len(tags)))
    assert update_loss() != pytest.approx(gold_loss, rel=1e-2)
