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


def token_kl(
    logits: Any, target_log_probs: Any, columns: Any, xp: Any, rows: Any = None
) -> tuple[float, Any]:
    """Mean per-token KL(target || current) over the target's tags, and its gradient.

    logits: (n_tokens, n_tags) of the model being trained; target_log_probs: (n_tokens,
    n_target_tags) log-probabilities of the distribution to match; columns: the index in
    `logits` of each target tag. The current distribution is renormalised over those
    columns, so tags the target does not know get no gradient. rows: a boolean mask of the
    tokens in the mean (all when None); the others get no gradient.
    """
    log_p = log_softmax(logits[:, columns], xp)
    q = xp.exp(target_log_probs)
    per_token = (q * (target_log_probs - log_p)).sum(axis=1)
    d_columns = xp.exp(log_p) - q
    if rows is not None:
        per_token = per_token[rows]
        d_columns[~rows] = 0.0
    n_tokens = max(len(per_token), 1)
    d_logits = xp.zeros_like(logits)
    d_logits[:, columns] = d_columns / n_tokens
    return float(per_token.sum()) / n_tokens, d_logits


def rehearsal_kl(logits: Any, tutor_logits: Any, columns: Any, xp: Any) -> tuple[float, Any]:
    """Mean per-token KL(tutor || current) over the tutor's tags, and its gradient.

    logits: (n_tokens, n_tags) of the model being trained; tutor_logits: (n_tokens,
    n_tutor_tags) of the frozen copy; columns: the index in `logits` of each tutor tag. As
    `token_kl` renormalises over those columns, tags added since the copy was made get no
    gradient: rehearsal keeps how the old tags share the probability without teaching that
    a new type's tokens are something else.
    """
    return token_kl(logits, log_softmax(tutor_logits, xp), columns, xp)


def log_probabilities(probs: Any, xp: Any) -> Any:
    """Row-wise log of `probs` renormalised (stored teacher distributions are rounded to
    float16, so rows sum to 1 only within ~1e-3); a zero becomes log(PROB_FLOOR), which
    weighs exp(that) ~ 0 in `token_kl`."""
    probs = probs.astype("float64")
    probs = probs / probs.sum(axis=1, keepdims=True)
    return xp.log(xp.maximum(probs, PROB_FLOOR))


def distillation_loss(
    logits: Any,
    targets: Any,
    teacher_log_probs: Any,
    columns: Any,
    weight: float,
    xp: Any,
    temperature: float = 1.0,
) -> tuple[float, Any]:
    """(1 - weight) * `token_cross_entropy` + weight * T^2 * `token_kl` from the teacher at
    temperature T, and its gradient.

    Both terms are means over the same tokens, those with a known gold target: the sum is
    then a mean over one count (`BertNER.loss_tokens`, which data-parallel training weighs
    workers by), and weight 0 is the gold loss exactly. A token left out of the gold (a bad
    entity skipped) is left out of the teacher's term too.

    Temperature is Hinton et al.'s: both distributions are softened, the teacher's as
    q^(1/T) renormalised (for one teacher, exactly its logits divided by T) and the model's
    as softmax(logits / T). Teachers that are near one-hot on their own training text teach
    little beyond the gold at T = 1; above it, the ranks of their other tags carry weight.
    T^2 keeps the term's gradient on the scale of T = 1's.
    """
    ce, d_ce = token_cross_entropy(logits, targets, xp)
    if temperature != 1.0:
        teacher_log_probs = log_softmax(teacher_log_probs / temperature, xp)
    rows = targets != NO_TARGET
    kl, d_kl = token_kl(logits / temperature, teacher_log_probs, columns, xp, rows=rows)
    scale = weight * temperature  # T^2 on the term, 1/T from d(logits / T) / d logits
    return (1.0 - weight) * ce + scale * temperature * kl, (1.0 - weight) * d_ce + scale * d_kl


#: Per operation that matches a tutor's distributions, what its errors say the tutor does.
_TUTORS = {"rehearsal": "the rehearsal model predicts", "distillation": "the teachers predict"}


def tutor_columns(
    tags: Sequence[str], tutor_tags: Sequence[str], name: str, operation: str = "rehearsal"
) -> list[int]:
    """Where each tag of the model being matched sits in the current head (`token_kl`'s
    `columns`); the head may have more tags, but must hold all of the tutor's.

    `operation` (a key of `_TUTORS`) is what the error names: a teacher/head mismatch in
    distillation must not read as a rehearsal failure.
    """
    missing = [tag for tag in tutor_tags if tag not in tags]
    if missing:
        raise BertNERError(
            f"{name}: {operation}: the head lacks the tags {missing} that {_TUTORS[operation]}"
        )
    return [list(tags).index(tag) for tag in tutor_tags]
