"""The training losses of `bert_ner`, as pure functions of logits: value and gradient.

They take and return arrays of thinc's current backend (`xp`: numpy on CPU, cupy on GPU),
because `spacy train` hands the gradient back through thinc, not torch autograd. The tests
check both value and gradient against torch's own `cross_entropy` and `kl_div`.
"""

from collections.abc import Sequence
from typing import Any

from ..errors import BertNERError
from ..tags import NO_TARGET

#: Floor under a gold tag's probability, so a token whose gold tag the model rules out
#: entirely (e.g. a gold entity token without a wordpiece, fixed to "O") costs a bounded loss.
PROB_FLOOR = 1e-12


def log_softmax(logits: Any, xp: Any) -> Any:
    """Row-wise log-softmax with `xp` (numpy or cupy)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def token_cross_entropy(logits: Any, targets: Any, xp: Any) -> tuple[float, Any]:
    """Mean cross-entropy over the tokens whose target is not `NO_TARGET`, and its gradient.

    logits: (n_tokens, n_tags); targets: (n_tokens,) tag ids, `NO_TARGET` where unknown. The
    mean is over known tokens (torch's `ignore_index` reduction); with none known, loss and
    gradient are 0.
    """
    known = targets != NO_TARGET
    truth = xp.where(known, targets, 0)
    probs = xp.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    rows = xp.arange(len(truth))
    n_known = max(int(known.sum()), 1)
    loss = float(-xp.log(probs[rows, truth][known] + PROB_FLOOR).sum()) / n_known
    d_logits = probs
    d_logits[rows, truth] -= 1.0
    d_logits[~known] = 0.0
    d_logits /= n_known
    return loss, d_logits


def rehearsal_kl(logits: Any, tutor_logits: Any, columns: Any, xp: Any) -> tuple[float, Any]:
    """Mean per-token KL(tutor || current) over the tutor's tags, and its gradient.

    logits: (n_tokens, n_tags) of the model being trained; tutor_logits: (n_tokens,
    n_tutor_tags) of the frozen copy; columns: the index in `logits` of each tutor tag. The
    current distribution is renormalised over those columns, so tags added since the copy was
    made get no gradient: rehearsal keeps how the old tags share the probability without
    teaching that a new type's tokens are something else.
    """
    log_p = log_softmax(logits[:, columns], xp)
    log_q = log_softmax(tutor_logits, xp)
    q = xp.exp(log_q)
    n_tokens = max(len(logits), 1)
    loss = float((q * (log_q - log_p)).sum()) / n_tokens
    d_logits = xp.zeros_like(logits)
    d_logits[:, columns] = (xp.exp(log_p) - q) / n_tokens
    return loss, d_logits


def tutor_columns(tags: Sequence[str], tutor_tags: Sequence[str], name: str) -> list[int]:
    """Where each of the rehearsal model's tags sits in the current head (`rehearsal_kl`'s
    `columns`); the head may have grown since, but must not have lost any."""
    missing = [tag for tag in tutor_tags if tag not in tags]
    if missing:
        raise BertNERError(
            f"{name}: cannot rehearse, the head lost the tags {missing} that the "
            "rehearsal model predicts"
        )
    return [list(tags).index(tag) for tag in tutor_tags]
