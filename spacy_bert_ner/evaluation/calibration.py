"""Temperature scaling: one number per `bert_ner` component that makes its scores honest.

A fine-tuned classifier is overconfident: trained to put all mass on the gold tag, it ends up
sharper than its accuracy warrants, and span probabilities inherit that. Dividing the logits
by a temperature T > 1 softens every distribution alike; T is fitted on dev data by
minimising the negative log-likelihood of the gold tags (Guo et al., 2017). The NLL is convex
in 1/T, so a golden-section search over log T finds the optimum without any gradient code.
Dividing all of a token's logits by one constant keeps every tag sequence's ranking, so the
decoded entities stay exactly what they were: only the scores move.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import spacy
from spacy.tokens import Doc
from spacy.training.iob_utils import doc_to_biluo_tags
from wasabi import msg

from ..conll import load_gold_docs
from ..errors import BertNERError
from ..pipeline.bert_ner import BertNER
from ..pipeline.loading import bert_ner_pipes, load_pipeline
from ..pipeline.losses import log_softmax
from ..tags import NO_TARGET
from .command import unannotated_copy

#: Search range of the temperature: far beyond any fitted value (usually 1-3).
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))
_SEARCH_STEPS = 60
_BATCH = 64


def component_inputs(nlp: spacy.Language, name: str, gold_docs: Sequence[Doc]) -> list[Doc]:
    """Copies of the gold docs' tokens, run through the components before `name` (a shared
    transformer, a sentencizer) so that `name`'s `predict` sees what it sees in the pipeline."""
    before = nlp.pipe_names[: nlp.pipe_names.index(name)]
    copies = [unannotated_copy(nlp, gold) for gold in gold_docs]
    with nlp.select_pipes(enable=before):
        return list(nlp.pipe(copies, batch_size=_BATCH))


def predict_logits(pipe: BertNER, docs: Sequence[Doc]) -> list[np.ndarray]:
    """`pipe`'s raw logits per doc (no temperature), in batches."""
    out: list[np.ndarray] = []
    for i in range(0, len(docs), _BATCH):
        out.extend(pipe.model.ops.to_numpy(s) for s in pipe.predict(docs[i : i + _BATCH]))
    return out


def gold_targets(pipe: BertNER, gold_docs: Sequence[Doc]) -> list[np.ndarray]:
    """Per doc, the tag id of each gold token in `pipe`'s scheme.

    Gold data is read as complete, as `evaluate` reads it: a token outside every gold entity
    is O whether or not its doc marks it so (a converted CoNLL doc leaves it unmarked).
    Entities of a type the component does not predict become `NO_TARGET`.
    """
    scheme = pipe.tag_scheme
    return [scheme.tag_ids_from_biluo(doc_to_biluo_tags(doc, missing="O")) for doc in gold_docs]


def token_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the target tags under ``softmax(logits / T)``."""
    log_probs = log_softmax(logits / temperature, np)
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising `token_nll` on ``(N, T)`` logits; rows whose target is
    `NO_TARGET` are left out."""
    known = targets != NO_TARGET
    logits, targets = np.asarray(logits, dtype=np.float64)[known], targets[known]
    if not len(targets):
        raise BertNERError("no gold tags to fit a temperature on")
    low, high = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    f_a, f_b = token_nll(logits, targets, math.exp(a)), token_nll(logits, targets, math.exp(b))
    for _ in range(_SEARCH_STEPS):
        if f_a <= f_b:
            high, b, f_b = b, a, f_a
            a = high - ratio * (high - low)
            f_a = token_nll(logits, targets, math.exp(a))
        else:
            low, a, f_a = a, b, f_b
            b = low + ratio * (high - low)
            f_b = token_nll(logits, targets, math.exp(b))
    return math.exp((low + high) / 2)


def calibrate_pipeline(
    model: str, dev_path: Path, output: Path, gpu_id: int = -1
) -> dict[str, dict[str, Any]]:
    """Fit each bert_ner component's temperature on the gold docs of `dev_path` and write the
    pipeline with them to `output`. Returns, per component, T and the dev NLL before/after."""
    nlp = load_pipeline(model, gpu_id)
    pipes = bert_ner_pipes(nlp)
    if not pipes:
        raise BertNERError(f"{model}: no bert_ner component to calibrate")
    gold_docs = load_gold_docs(Path(dev_path), nlp.vocab)
    if not gold_docs:
        raise BertNERError(f"{dev_path}: no documents to calibrate on")
    fitted = {}
    for name, pipe in pipes:
        logits = np.concatenate(predict_logits(pipe, component_inputs(nlp, name, gold_docs)))
        targets = np.concatenate(gold_targets(pipe, gold_docs))
        temperature = fit_temperature(logits, targets)
        known = targets != NO_TARGET
        before = token_nll(logits[known], targets[known], pipe.cfg["temperature"])
        after = token_nll(logits[known], targets[known], temperature)
        pipe.cfg["temperature"] = temperature
        if not _LOG_T_RANGE[0] + 0.01 < math.log(temperature) < _LOG_T_RANGE[1] - 0.01:
            # The NLL still falls at the edge: the dev data is (nearly) all predicted right,
            # e.g. it is the training data; the scores will be near 0 or 1.
            msg.warn(f"{name}: temperature {temperature:.3g} is at the edge of the search "
                     "range; is the dev data part of the training data?")  # fmt: skip
        fitted[name] = {"temperature": temperature, "nll_before": before, "nll_after": after}
        msg.good(f"{name}: temperature {temperature:.3f}, dev NLL {before:.4f} -> {after:.4f}")
    nlp.to_disk(output)
    msg.good(f"Calibrated pipeline written to {output}")
    return fitted
