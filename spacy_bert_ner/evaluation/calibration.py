"""Temperature scaling: one number per `bert_ner` component that makes its scores honest.

A fine-tuned classifier is overconfident: trained to put all mass on the gold tag, it ends up
sharper than its accuracy warrants, and span probabilities inherit that. Dividing the logits
by a temperature T > 1 softens every distribution alike (Guo et al., 2017). Dividing all of a
token's logits by one constant keeps every tag sequence's ranking, so the decoded entities
stay exactly what they were: only the scores move. T is fitted on dev data, by one of two
objectives (`Objective`):

- `entities` (the default): the log loss of the decoded entities' span probabilities against
  whether each entity is right (exact span and label). That is what the score claims to be.
- `tags`: the negative log-likelihood of the gold tags, the textbook fit. Most tokens are O
  and nearly always right, so it is dominated by them: on CoNLL-2003 it left the entities of a
  trained MiniLM as overconfident as before (T = 1.08, ECE 0.055; see docs/confidence.md).

Either loss is searched over log T by golden section, without any gradient code; the tags'
NLL is convex in 1/T, and the entities' log loss, a sum of logistic losses of smooth
functions of T, has one minimum in practice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
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
from ..pipeline.mentions import TrainingMentions
from ..pipeline.predict import scored_batches
from ..posteriors import posteriors
from ..tags import NO_TARGET
from .feature_fit import entity_log_loss, fit_on_dev

#: Search range of the temperature: far beyond any fitted value (usually 1-3).
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))
_SEARCH_STEPS = 60


class Method(StrEnum):
    """What `calibrate` fits: the temperature alone, or the feature calibrator on top of it
    (`pipeline.calibrator`; the default: it stays honest on text unlike dev)."""

    temperature = "temperature"
    features = "features"


class Objective(StrEnum):
    """What the temperature is fitted to (see the module's docstring)."""

    entities = "entities"
    tags = "tags"


def component_logits(
    nlp: spacy.Language, name: str, gold_docs: Sequence[Doc]
) -> tuple[list[Doc], list[np.ndarray]]:
    """Component `name`'s raw logits (no temperature) on copies of the gold docs, and the
    copies as it saw them (after the pipes before it: their sentence starts are the lattice's
    segments)."""
    batches = list(scored_batches(nlp, name, gold_docs))
    return [doc for b in batches for doc in b.docs], [lg for b in batches for lg in b.logits()]


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
    return _golden_section(lambda t: token_nll(logits, targets, t))


@dataclass(frozen=True)
class DecodedOnGold:
    """A component's decoded entities on gold docs, whose scores can be computed at any
    temperature: what the entity objective and `reliability` score."""

    docs: list[Doc]  # copies of the gold docs as the component saw them
    logits: list[np.ndarray]
    starts: list[np.ndarray | None]  # per doc, sentence starts (the lattice's segments)
    spans: list[list[tuple[int, int, str]]]  # per doc, (start, end, label) decoded
    mean_tag_probs: list[float]  # per entity, in order
    correct: np.ndarray  # per entity: a gold entity has exactly its span and label
    n_gold: int

    def span_probs(self, pipe: BertNER, temperature: float) -> np.ndarray:
        """Every entity's span probability with the logits divided by `temperature`."""
        scaled = [log_softmax(doc_logits / temperature, np) for doc_logits in self.logits]
        found = posteriors(pipe.tag_scheme, scaled, self.spans, self.starts)
        return np.array([p for doc in found for p in doc.span_probs.tolist()])


def decode_on_gold(
    nlp: spacy.Language, name: str, pipe: BertNER, gold_docs: Sequence[Doc]
) -> DecodedOnGold:
    """Decode component `name` on copies of `gold_docs` (at T = 1: the entities do not depend
    on T) and mark each entity right or wrong."""
    docs, logits = component_logits(nlp, name, gold_docs)
    scheme = pipe.tag_scheme
    log_probs = [log_softmax(doc_logits, np) for doc_logits in logits]
    starts = [
        doc.to_array("SENT_START") == 1 if doc.has_annotation("SENT_START") else None
        for doc in docs
    ]
    found = [
        scheme.entities(scheme.decode(lp, ss), np.exp(lp), ss)
        for lp, ss in zip(log_probs, starts, strict=True)
    ]
    spans = [[(s, e, label) for s, e, label, _ in doc_found] for doc_found in found]
    gold = {(i, e.start, e.end, e.label_) for i, doc in enumerate(gold_docs) for e in doc.ents}
    correct = np.array([(i, *span) in gold for i, doc_spans in enumerate(spans)
                        for span in doc_spans], dtype=bool)  # fmt: skip
    means = [m for doc_found in found for *_, m in doc_found]
    return DecodedOnGold(docs, logits, starts, spans, means, correct, len(gold))


def fit_entity_temperature(pipe: BertNER, decoded: DecodedOnGold) -> float:
    """The temperature minimising `entity_log_loss` of the decoded entities."""
    if not len(decoded.correct):
        raise BertNERError(
            "no entities decoded on the dev data to fit a temperature on; use --objective tags"
        )
    return _golden_section(lambda t: entity_log_loss(decoded.span_probs(pipe, t), decoded.correct))


def _golden_section(loss: Callable[[float], float]) -> float:
    """The temperature in `_LOG_T_RANGE` minimising `loss`, searched over log T."""
    low, high = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    f_a, f_b = loss(math.exp(a)), loss(math.exp(b))
    for _ in range(_SEARCH_STEPS):
        if f_a <= f_b:
            high, b, f_b = b, a, f_a
            a = high - ratio * (high - low)
            f_a = loss(math.exp(a))
        else:
            low, a, f_a = a, b, f_b
            b = low + ratio * (high - low)
            f_b = loss(math.exp(b))
    return math.exp((low + high) / 2)


def calibrate_pipeline(
    model: str,
    dev_path: Path,
    output: Path,
    gpu_id: int = -1,
    objective: Objective = Objective.entities,
    *,
    method: Method = Method.features,
    train_paths: Sequence[Path] = (),
    target_precision: float | None = None,
    risk: float = 0.1,
) -> dict[str, dict[str, Any]]:
    """Fit each bert_ner component's temperature on the gold docs of `dev_path` by `objective`,
    then (`Method.features`) the feature calibrator on top of it, and (with
    `target_precision`) each label's guaranteed threshold, and write the pipeline with them to
    `output`. The gold entities of `train_paths` join the components' training mentions. Returns,
    per component, what was fitted and the dev loss of the objective before and after."""
    nlp = load_pipeline(model, gpu_id)
    pipes = bert_ner_pipes(nlp)
    if not pipes:
        raise BertNERError(f"{model}: no bert_ner component to calibrate")
    gold_docs = load_gold_docs(Path(dev_path), nlp.vocab)
    if not gold_docs:
        raise BertNERError(f"{dev_path}: no documents to calibrate on")
    for train_path in train_paths:
        mentions = TrainingMentions.from_docs(load_gold_docs(Path(train_path), nlp.vocab))
        for _, pipe in pipes:
            pipe.mentions = pipe.mentions | mentions
    fitted = {}
    for name, pipe in pipes:
        fitted[name] = _fit_temperature(nlp, name, pipe, gold_docs, objective)
        pipe.cfg["calibrator"] = pipe.cfg["guaranteed_thresholds"] = None
        if method is Method.features or target_precision is not None:
            decoded = decode_on_gold(nlp, name, pipe, gold_docs)
            features = method is Method.features
            fitted[name].update(fit_on_dev(pipe, decoded, features, target_precision, risk))
    nlp.to_disk(output)
    msg.good(f"Calibrated pipeline written to {output}")
    return fitted


def _fit_temperature(
    nlp: spacy.Language, name: str, pipe: BertNER, gold_docs: Sequence[Doc], objective: Objective
) -> dict[str, Any]:
    """Set `pipe`'s temperature fitted by `objective`; the fit's figures."""
    current = pipe.cfg["temperature"]
    if objective is Objective.entities:
        decoded = decode_on_gold(nlp, name, pipe, gold_docs)
        temperature = fit_entity_temperature(pipe, decoded)
        before, after = (
            entity_log_loss(decoded.span_probs(pipe, t), decoded.correct)
            for t in (current, temperature)
        )
    else:
        logits = np.concatenate(component_logits(nlp, name, gold_docs)[1])
        targets = np.concatenate(gold_targets(pipe, gold_docs))
        temperature = fit_temperature(logits, targets)
        known = targets != NO_TARGET
        before, after = (
            token_nll(logits[known], targets[known], t) for t in (current, temperature)
        )
    pipe.cfg["temperature"] = temperature
    if not _LOG_T_RANGE[0] + 0.01 < math.log(temperature) < _LOG_T_RANGE[1] - 0.01:
        # The loss still falls at the edge: the dev data is (nearly) all predicted right,
        # e.g. it is the training data; the scores will be near 0 or 1.
        msg.warn(f"{name}: temperature {temperature:.3g} is at the edge of the search "
                 "range; is the dev data part of the training data?")  # fmt: skip
    what = "entity log loss" if objective is Objective.entities else "tag NLL"
    msg.good(f"{name}: temperature {temperature:.3f}, dev {what} {before:.4f} -> {after:.4f}")
    return {"temperature": temperature, "objective": objective.value,
            "loss_before": before, "loss_after": after}  # fmt: skip
