"""The losses against torch autograd: same value, same gradient, on random logits."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.pipeline.losses import (
    PROB_FLOOR,
    distillation_loss,
    log_probabilities,
    log_softmax,
    rehearsal_kl,
    token_cross_entropy,
    tutor_columns,
)
from spacy_bert_ner.tags import NO_TARGET


def random_logits(seed: int, n_tokens: int, n_tags: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(scale=3.0, size=(n_tokens, n_tags))


@pytest.mark.parametrize("seed", range(5))
def test_token_cross_entropy_is_torchs_with_ignore_index(seed):
    rng = np.random.default_rng(100 + seed)
    logits = random_logits(seed, n_tokens=23, n_tags=9)
    targets = rng.integers(0, 9, size=23)
    targets[rng.random(23) < 0.3] = NO_TARGET
    loss, d_logits = token_cross_entropy(logits.copy(), targets, np)

    torch_logits = torch.tensor(logits, requires_grad=True)
    expected = F.cross_entropy(torch_logits, torch.tensor(targets), ignore_index=NO_TARGET)
    expected.backward()
    # PROB_FLOOR adds up to ~1e-12 / p per token to the value (not to the gradient).
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    np.testing.assert_allclose(d_logits, torch_logits.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_token_cross_entropy_with_no_known_target_is_zero():
    logits = random_logits(0, n_tokens=4, n_tags=3)
    loss, d_logits = token_cross_entropy(logits, np.full(4, NO_TARGET), np)
    assert loss == 0.0
    assert not d_logits.any()


@pytest.mark.parametrize("seed", range(5))
def test_rehearsal_kl_is_torchs_kl_div_over_the_tutors_tags(seed):
    logits = random_logits(seed, n_tokens=17, n_tags=7)
    tutor_logits = random_logits(50 + seed, n_tokens=17, n_tags=5)
    # The current head has two tags the tutor lacks (added since), at columns 2 and 6.
    columns = np.array([0, 1, 3, 4, 5])
    loss, d_logits = rehearsal_kl(logits.copy(), tutor_logits, columns, np)

    torch_logits = torch.tensor(logits, requires_grad=True)
    log_p = torch.log_softmax(torch_logits[:, columns], dim=1)
    log_q = torch.log_softmax(torch.tensor(tutor_logits), dim=1)
    expected = F.kl_div(log_p, log_q, log_target=True, reduction="sum") / len(logits)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-9)
    np.testing.assert_allclose(d_logits, torch_logits.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert not d_logits[:, [2, 6]].any()  # new tags are left free


def teacher_probs(seed: int, n_tokens: int, n_tags: int) -> np.ndarray:
    """Averaged teacher distributions as the file stores them: float16, some exact zeros."""
    probs = torch.softmax(torch.tensor(random_logits(seed, n_tokens, n_tags)), dim=1).numpy()
    probs[np.random.default_rng(seed).random(probs.shape) < 0.1] = 0.0
    return (probs / probs.sum(1, keepdims=True)).astype(np.float16)


def torch_distillation(logits, targets, probs, columns, weight, temperature=1.0):
    """The distillation loss written with torch's cross_entropy and kl_div, Hinton's
    temperature as his paper writes it (teacher and student softened, T^2 on the term);
    logits' grad."""
    torch_logits = torch.tensor(logits, requires_grad=True)
    known = torch.tensor(targets != NO_TARGET)
    q = torch.tensor(probs.astype(np.float64))
    q = q.clamp(min=PROB_FLOOR) ** (1 / temperature)
    q = q / q.sum(1, keepdim=True)
    log_p = torch.log_softmax(torch_logits[:, columns] / temperature, dim=1)
    kl = F.kl_div(log_p[known], q[known], reduction="sum") / max(int(known.sum()), 1)
    ce = F.cross_entropy(torch_logits, torch.tensor(targets), ignore_index=NO_TARGET)
    loss = (1 - weight) * ce + weight * temperature**2 * kl
    loss.backward()
    return loss.item(), torch_logits.grad.numpy()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weight", [0.3, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_distillation_loss_is_torchs_cross_entropy_and_kl_div(seed, weight, temperature):
    rng = np.random.default_rng(200 + seed)
    logits = random_logits(seed, n_tokens=19, n_tags=9)
    targets = rng.integers(0, 9, size=19)
    targets[rng.random(19) < 0.3] = NO_TARGET
    probs = teacher_probs(70 + seed, n_tokens=19, n_tags=7)
    columns = np.array([0, 1, 2, 4, 5, 6, 8])  # the student's head has two tags more
    loss, d_logits = distillation_loss(
        logits.copy(), targets, log_probabilities(probs, np), columns, weight, np, temperature
    )
    expected, expected_grad = torch_distillation(
        logits, targets, probs, columns, weight, temperature
    )
    # PROB_FLOOR: a zero teacher probability weighs 1e-12, not 0 (1e-6 at T = 2). The KL
    # term's gradient is scaled by T, and its rounding with it.
    assert loss == pytest.approx(expected, rel=1e-6)
    atol = 1e-11 * max(1.0, temperature)
    np.testing.assert_allclose(d_logits, expected_grad, rtol=1e-9, atol=atol)
    assert not d_logits[targets == NO_TARGET].any()  # out of the gold, out of the teacher's term


def test_distillation_with_weight_zero_is_the_gold_loss_exactly():
    rng = np.random.default_rng(7)
    logits = random_logits(7, n_tokens=13, n_tags=9)
    targets = rng.integers(0, 9, size=13)
    targets[3] = NO_TARGET
    probs = teacher_probs(8, n_tokens=13, n_tags=9)
    loss, d_logits = distillation_loss(
        logits.copy(), targets, log_probabilities(probs, np), np.arange(9), 0.0, np
    )
    gold_loss, gold_d_logits = token_cross_entropy(logits.copy(), targets, np)
    assert loss == gold_loss
    assert np.array_equal(d_logits, gold_d_logits)


def test_log_softmax_is_torchs():
    logits = random_logits(3, n_tokens=11, n_tags=6)
    expected = torch.log_softmax(torch.tensor(logits), dim=1).numpy()
    np.testing.assert_allclose(log_softmax(logits, np), expected, rtol=1e-12, atol=1e-12)


def test_tutor_columns_find_the_tutors_tags_in_a_grown_head():
    assert tutor_columns(["O", "B-X", "B-PER", "I-PER"], ["O", "B-PER", "I-PER"], "ner") == [
        0,
        2,
        3,
    ]


@pytest.mark.parametrize(
    "operation,tutor",
    [("rehearsal", "the rehearsal model predicts"), ("distillation", "the teachers predict")],
)
def test_a_tag_missing_from_the_head_names_the_operation_that_failed(operation, tutor):
    with pytest.raises(
        BertNERError, match=rf"^ner: {operation}: the head lacks the tags \['B-X'\] that {tutor}$"
    ):
        tutor_columns(["O"], ["O", "B-X"], "ner", operation=operation)
