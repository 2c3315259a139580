"""The `bert_ner` component: a trainable spaCy pipe around a token-classifier model.

Its data path, one module each: `windows` (Doc -> wordpiece windows), `model` (windows ->
one logit row per token), `tags` (logits -> constrained tag sequence -> entity spans), and this
module (spans -> `doc.ents` or `doc.spans[key]`, training loss, serialization).

Entity confidences live in one place: the `Span` extension `span._.bert_ner_score`, the mean
probability of the tags decoded for the entity's tokens (None for entities this component did
not predict).
"""

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import srsly
import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import Scorer, get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer
from thinc.types import Floats2d

from .about import __version__
from .errors import BertNERError, ModelLoadError, one_line
from .io import atomic_files, atomic_path
from .model import (
    build_token_classifier,
    get_hf_model,
    has_transformer,
    load_pretrained,
    peek_tags,
    resize_head,
    set_transformer,
    tag_names,
)
from .tags import TagScheme

logger = logging.getLogger("spacy.bert_ner")

# `nlp.pipe(n_process=N)` forks workers after torch has started its thread pool; OpenMP
# pools do not survive a fork and the workers hang. One thread per worker is also the right
# split of the cores among N processes.
os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))

#: How far under the "O" logit `add_label` starts a new tag (see `model.resize_head`).
#: Entities never change (any margin > 0 guarantees it); each new tag gets e^-5 (0.7%) of
#: O's probability, so an entity's confidence shrinks by a factor 1 + n_new_tags * 0.0067 *
#: p(O) at most (under 0.2% where p(O) < 0.1). The rows climb the margin in a few dozen
#: updates; a larger one costs more steps before the type can be predicted at all.
NEW_TAG_MARGIN = 5.0

SCORE_EXTENSION = "bert_ner_score"
#: Key of the package version in a saved component's cfg (not a setting).
VERSION_KEY = "spacy_bert_ner_version"
BAD_GOLD_ACTIONS = ("error", "skip")
if not Span.has_extension(SCORE_EXTENSION):
    Span.set_extension(SCORE_EXTENSION, default=None)

DEFAULT_MODEL: dict[str, Any] = {
    "@architectures": "spacy_bert_ner.TokenClassifier.v1",
    "name": "bert-base-cased",
    "max_length": None,
    "stride": None,
    "window_batch_size": 32,
    "max_batch_pieces": 2048,
    "mixed_precision": True,
    "grad_scaler_config": {},
    "int8": False,
}


@Language.factory(
    "bert_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_MODEL,
        "scheme": None,
        "spans_key": None,
        "overwrite_ents": True,
        "on_bad_gold": "error",
        "scorer": {"@scorers": "spacy_bert_ner.scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_bert_ner(
    nlp: Language,
    name: str,
    model: Model[list[Doc], list[Floats2d]] | str,
    scheme: str | None,
    spans_key: str | None,
    overwrite_ents: bool,
    on_bad_gold: str,
    scorer: Callable | None,
) -> "BertNER":
    """Create a `bert_ner` pipe.

    model: a `spacy_bert_ner.TokenClassifier.v1` block, or just a hub name / directory
        (shorthand for that block with default settings).
    scheme: IOB2, IOB1, BIOES or BILOU; None detects it from the model's labels (IOB2 for new
        heads). Needed only for IOB1 models, whose label set looks like IOB2.
    spans_key: write predictions to `doc.spans[spans_key]` instead of `doc.ents`, and take
        the training gold from that span group (whose spans must not overlap).
    overwrite_ents: replace existing entities (True) or keep them and add only predictions
        that do not overlap them (False).
    on_bad_gold: what training does with a gold entity it cannot learn, i.e. one whose edges
        fall inside a token of the predicted doc (misaligned) or whose label the head does
        not predict: "error" stops with the doc and entity named; "skip" leaves the
        entity's tokens out of the loss and logs it once with a running count (warnings for
        the first ten and the 100th, 1000th, ...; debug messages for the others).
    """
    return BertNER(
        nlp.vocab,
        build_token_classifier(name=model) if isinstance(model, str) else model,
        name,
        scheme=scheme,
        spans_key=spans_key,
        overwrite_ents=overwrite_ents,
        on_bad_gold=on_bad_gold,
        scorer=scorer,
    )


@registry.scorers("spacy_bert_ner.scorer.v1")
def make_scorer() -> Callable[..., dict[str, Any]]:
    """spaCy's NER figures for `doc.ents`, or span figures for `doc.spans[spans_key]`."""

    def score(examples: Iterable[Example], *, spans_key: str | None = None, **_: Any) -> dict:
        if spans_key is None:
            return get_ner_prf(examples)
        return Scorer.score_spans(
            examples,
            f"spans_{spans_key}",
            getter=lambda doc, attr: doc.spans.get(spans_key, []),
            has_annotation=lambda doc: spans_key in doc.spans,
        )

    return score


class BertNER(TrainablePipe):
    """Named entities from a Hugging Face token classifier, decoded into well-formed spans."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[list[Doc], list[Floats2d]],
        name: str = "bert_ner",
        *,
        scheme: str | None = None,
        spans_key: str | None = None,
        overwrite_ents: bool = True,
        on_bad_gold: str = "error",
        scorer: Callable | None = None,
    ) -> None:
        if on_bad_gold not in BAD_GOLD_ACTIONS:
            raise BertNERError(
                f"bert_ner: on_bad_gold must be one of {BAD_GOLD_ACTIONS}, not {on_bad_gold!r}"
            )
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: dict[str, Any] = {
            "labels": [],
            "scheme": scheme,
            "spans_key": spans_key,
            "overwrite_ents": overwrite_ents,
        }
        # A training-time choice, not part of the trained model: kept out of the saved cfg,
        # so a loaded pipeline takes it from its config (and its overrides).
        self.on_bad_gold = on_bad_gold
        self._tag_scheme: TagScheme | None = None
        # Bad gold entities already warned about (with on_bad_gold = "skip"), so each is
        # logged and counted once however many epochs see it.
        self._skipped_gold: set[tuple[int, int, int, str]] = set()
        # A frozen copy of the model that `rehearse` pulls toward; `nlp.resume_training()`
        # (and `spacy train` for a sourced component) sets it.
        self._rehearsal_model: Model[list[Doc], list[Floats2d]] | None = None

    # -- labels and tags -------------------------------------------------------------------

    @property
    def tag_scheme(self) -> TagScheme:
        """The model's tags read in the configured (or detected) scheme."""
        tags = tuple(tag_names(self.hf_model.config))
        if self._tag_scheme is None or self._tag_scheme.tags != tags:
            self._tag_scheme = TagScheme.from_tags(tags, self.cfg["scheme"])
        return self._tag_scheme

    @property
    def labels(self) -> tuple[str, ...]:
        if has_transformer(self.model):
            return self.tag_scheme.labels
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> list[str]:
        return list(self.labels)

    @property
    def hf_model(self) -> Any:
        """The Hugging Face model, loaded from the configured name on first use."""
        self._require_model()
        return get_hf_model(self.model)

    def _require_model(self) -> None:
        if not has_transformer(self.model):
            self.model.initialize()

    def add_label(self, label: str) -> int:
        """Add an entity type; returns 0 if the component already predicts it, else 1.

        Before the model is loaded, the type is recorded and `initialize` sizes the head.
        On a loaded (trained) model the head grows at once: the rows of existing tags are
        kept bit for bit and the type's tags in the component's scheme (B-X and I-X in IOB2)
        are appended, starting `NEW_TAG_MARGIN` under O so that every predicted entity stays
        what it was until training (confidences move slightly, see `NEW_TAG_MARGIN`). The
        Hugging Face config's id2label/label2id follow, so the grown model saves and loads
        as any other.
        """
        if label in self.labels:
            return 0
        if not has_transformer(self.model):
            self.cfg["labels"] = sorted({*self.labels, label})
            return 1
        scheme = self.tag_scheme
        added = TagScheme.from_labels([label], scheme.name).tags
        tags = [*scheme.tags, *(tag for tag in added if tag not in scheme.tags)]
        resize_head(self.hf_model, tags, below_outside=NEW_TAG_MARGIN)
        # A new shim: new optimizer keys, since the head's parameters changed shape.
        set_transformer(self.model, self.hf_model, self.model.attrs["tokenizer"])
        self.cfg["labels"] = list(self.labels)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Load the model and size its head for the entity types of the examples (or `labels`).

        A classifier whose entity types and scheme already match keeps its head untouched;
        otherwise the head is rebuilt, keeping the rows of the tags both sets share.
        """
        validate_get_examples(get_examples, "BertNER.initialize")
        wanted = set(labels) if labels is not None else self._labels_in(get_examples())
        wanted |= set(self.cfg["labels"])
        if wanted:
            current = (
                get_hf_model(self.model).config.id2label.values()
                if has_transformer(self.model)
                else peek_tags(self.model.attrs["name"])
            )
            current_scheme = (
                TagScheme.from_tags(list(current), self.cfg["scheme"]) if current else None
            )
            scheme = self.cfg["scheme"] or (current_scheme.name if current_scheme else "IOB2")
            if current_scheme is None or (current_scheme.name, set(current_scheme.labels)) != (
                scheme,
                wanted,
            ):
                self.model.attrs["labels_for_head"] = TagScheme.from_labels(wanted, scheme).tags
        self.model.initialize()
        self.model.attrs["labels_for_head"] = None
        self.cfg["labels"] = list(self.labels)
        # Fail before training starts, not at the batch that holds the first bad entity.
        for index, example in enumerate(get_examples()):
            gold_example = self._gold_example(example, index)
            self._check_gold(gold_example, gold_example.get_aligned_ner(), index)

    def _labels_in(self, examples: Iterable[Example]) -> set[str]:
        key = self.cfg["spans_key"]
        found: set[str] = set()
        for eg in examples:
            spans = eg.reference.spans.get(key, []) if key else eg.reference.ents
            found.update(span.label_ for span in spans)
        return found

    # -- prediction ------------------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]) -> list[Floats2d]:
        """Logits per token, for the whole batch in one length-sorted pass."""
        docs = list(docs)
        self._require_model()  # loads outside inference mode, so the weights stay trainable
        with torch.inference_mode():
            return self.model.predict(docs)

    def set_annotations(self, docs: Iterable[Doc], scores: list[Floats2d]) -> None:
        scheme = self.tag_scheme
        for doc, doc_scores in zip(docs, scores, strict=True):
            log_probs = _log_softmax(self.model.ops.to_numpy(doc_scores), np)
            # Windows span sentences for context, but entities stay inside one.
            sent_starts = (
                doc.to_array("SENT_START") == 1 if doc.has_annotation("SENT_START") else None
            )
            tag_ids = scheme.decode(log_probs, sent_starts)
            entities = scheme.entities(tag_ids, np.exp(log_probs), sent_starts)
            scored = {
                (start, end): (Span(doc, start, end, label=label), score)
                for start, end, label, score in entities
            }
            for span in self._write(doc, [span for span, _ in scored.values()]):
                # Span extensions are keyed by offsets, so only spans really written get one.
                span._.set(SCORE_EXTENSION, scored[span.start, span.end][1])

    def _write(self, doc: Doc, spans: list[Span]) -> list[Span]:
        """Put `spans` where the config says; returns those actually written."""
        key, overwrite = self.cfg["spans_key"], self.cfg["overwrite_ents"]
        if key is not None:
            doc.spans[key] = spans if overwrite else [*doc.spans.get(key, []), *spans]
            return spans
        if overwrite:
            doc.set_ents(spans, default="outside")
            return spans
        taken = np.zeros(len(doc), dtype=bool)
        for ent in doc.ents:
            taken[ent.start : ent.end] = True
        free = [span for span in spans if not taken[span.start : span.end].any()]
        for span in free:
            taken[span.start : span.end] = True
        # Every token has been labelled: those without any annotation yet become "O".
        unlabelled = (doc.to_array("ENT_IOB") == 0) & ~taken
        doc.set_ents(free, outside=_runs(doc, unlabelled), default="unmodified")
        return free

    # -- training --------------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """One step of token cross-entropy; dropout is the model's own (its config's)."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BertNER.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(
        self, examples: Iterable[Example], scores: list[Floats2d]
    ) -> tuple[float, list[Floats2d]]:
        """Mean cross-entropy over tokens whose gold tag is known (misaligned ones are skipped)."""
        scheme = self.tag_scheme
        xp = self.model.ops.xp
        gold = np.concatenate([self._gold_tag_ids(eg, scheme) for eg in examples])
        logits = xp.concatenate(scores)
        known = xp.asarray(gold >= 0)
        truth = xp.asarray(np.where(gold >= 0, gold, 0))
        probs = xp.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        rows = xp.arange(len(truth))
        n_known = max(int(known.sum()), 1)
        loss = float(-xp.log(probs[rows, truth][known] + 1e-12).sum()) / n_known
        d_logits = probs
        d_logits[rows, truth] -= 1.0
        d_logits[~known] = 0.0
        d_logits /= n_known
        lengths = np.cumsum([len(s) for s in scores])[:-1]
        return loss, list(xp.split(d_logits, lengths))

    def _gold_tag_ids(self, example: Example, scheme: TagScheme) -> np.ndarray:
        """Targets for one example's tokens, -1 where the loss ignores them: no gold
        annotation, or (after `_check_gold`) a bad entity that on_bad_gold skips."""
        example = self._gold_example(example)
        biluo = example.get_aligned_ner()
        self._check_gold(example, biluo)
        return scheme.tag_ids_from_biluo(biluo)

    def _gold_example(self, example: Example, index: int | None = None) -> Example:
        """The example as training reads it, through `get_aligned_ner`.

        Its gold labels are made known to the predicted doc's vocab, where spaCy's alignment
        looks them up (a reference doc from another vocab failed there). With `spans_key`,
        the gold is the reference's `doc.spans[spans_key]`, put in `doc.ents` (one tag per
        token, so the spans must not overlap).
        """
        key = self.cfg["spans_key"]
        ref = example.reference
        strings = example.predicted.vocab.strings
        for span in ref.spans.get(key, []) if key else ref.ents:
            strings.add(span.label_)
        if key is None:
            return example
        gold = ref.copy()
        gold.set_ents([], default="missing")  # unannotated unless the doc has the span group
        if key in ref.spans:
            spans = sorted(ref.spans[key], key=lambda span: (span.start, span.end))
            for before, after in zip(spans, spans[1:], strict=False):
                if after.start < before.end:
                    where = f"training example {index}, " if index is not None else ""
                    raise BertNERError(
                        f"bert_ner: gold spans {before.text!r} ({before.label_}) and "
                        f"{after.text!r} ({after.label_}) of doc.spans[{key!r}] overlap "
                        f"({where}doc {_excerpt(ref)!r}); a token classifier learns one "
                        "entity per token: keep one of them"
                    )
            gold.set_ents([Span(gold, s.start, s.end, label=s.label) for s in spans])
        return Example(example.predicted, gold)

    def _check_gold(
        self, example: Example, biluo: Sequence[str | None], index: int | None = None
    ) -> None:
        """Raise for, or log and count, the gold entities this component cannot learn."""
        for entity, problem in bad_gold_entities(example, biluo, self.labels):
            ref = example.reference
            where = f"training example {index}, " if index is not None else ""
            what = (
                f"gold entity {entity.text!r} ({entity.label_}, {where}doc {_excerpt(ref)!r}, "
                f"characters {entity.start_char}-{entity.end_char}) {problem}"
            )
            if self.on_bad_gold == "error":
                fix = (
                    "call add_label() before training, or initialize with labels that include "
                    "it ([initialize.components.bert_ner] labels); "
                    if entity.label_ not in self.labels
                    else "fix the gold spans or the tokenization; "
                )
                raise BertNERError(
                    f"bert_ner: {what}. To train anyway, {fix}or set [components.bert_ner] "
                    'on_bad_gold = "skip" (in the config.cfg of a sourced pipeline) to leave '
                    "such entities out of the loss"
                )
            key = (hash(ref.text), entity.start_char, entity.end_char, entity.label_)
            if key in self._skipped_gold:
                continue
            self._skipped_gold.add(key)
            count = len(self._skipped_gold)
            # A corpus trained on a deliberate subset of its labels skips thousands: warn
            # for the first ten, then at 100, 1000, ...; the rest go to the debug log.
            loud = count <= 10 or str(count).rstrip("0") == "1"
            logger.log(
                logging.WARNING if loud else logging.DEBUG,
                "bert_ner: left out of the loss: %s (%d bad gold entities skipped so far)",
                what,
                count,
            )

    def rehearse(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Pull the model's tag distributions on `examples` toward the rehearsal model's.

        spaCy's rehearsal: `nlp.resume_training()` keeps a frozen copy of the model, and this
        step lowers the KL divergence from the copy's tag distribution to the current one on
        the examples' texts (their annotations are not read), through the same thinc/torch
        path as `update`, so optimizer, schedules and gradient accumulation apply alike.
        With `sgd=None` the gradients are only accumulated (to be applied with the next
        `update`'s); `drop` is accepted for spaCy's API, dropout is the model's own.
        """
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BertNER.rehearse")
        if self._rehearsal_model is None:
            raise BertNERError(
                f"{self.name}: nothing to rehearse against; call nlp.resume_training() first "
                "(spacy train does for a sourced component), which keeps a copy of the model"
            )
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            return losses
        with torch.inference_mode():
            tutor_scores = self._rehearsal_model.predict(docs)
        tutor_tags = tag_names(get_hf_model(self._rehearsal_model).config)
        scores, backprop = self.model.begin_update(docs)
        loss, d_scores = self.get_rehearsal_loss(scores, tutor_scores, tutor_tags)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_rehearsal_loss(
        self, scores: list[Floats2d], tutor_scores: list[Floats2d], tutor_tags: list[str]
    ) -> tuple[float, list[Floats2d]]:
        """Mean per-token KL(tutor || current) over the tutor's tags.

        The current distribution is renormalised over the tutor's tags, so tags added since
        (`add_label`) are left free: rehearsal keeps how the old tags share the rest of the
        probability without teaching that a new type's tokens are O.
        """
        xp = self.model.ops.xp
        tags = self.tag_scheme.tags
        missing = [tag for tag in tutor_tags if tag not in tags]
        if missing:
            raise BertNERError(
                f"{self.name}: cannot rehearse, the head lost the tags {missing} that the "
                "rehearsal model predicts"
            )
        columns = xp.asarray([tags.index(tag) for tag in tutor_tags])
        logits = xp.concatenate(scores)
        log_p = _log_softmax(logits[:, columns], xp)
        log_q = _log_softmax(xp.concatenate(tutor_scores), xp)
        q = xp.exp(log_q)
        n_tokens = max(len(logits), 1)
        loss = float((q * (log_q - log_p)).sum()) / n_tokens
        d_logits = xp.zeros_like(logits)
        d_logits[:, columns] = (xp.exp(log_p) - q) / n_tokens
        lengths = np.cumsum([len(s) for s in scores])[:-1]
        return loss, list(xp.split(d_logits, lengths))

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        validate_examples(examples, "BertNER.score")
        assert self.scorer is not None
        return self.scorer(examples, spans_key=self.cfg["spans_key"], **kwargs)

    # -- serialization ---------------------------------------------------------------------

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Write cfg (with the package version) plus the Hugging Face model (safetensors) and
        tokenizer under `path/model`.

        Every file is replaced whole (see `atomic_files`): `spacy train` rewrites model-last
        at each evaluation, and a run killed during that write must still leave a model to
        resume from.
        """
        path = Path(path)
        with atomic_path(path / "cfg") as tmp_path:
            srsly.write_json(tmp_path, {**self.cfg, VERSION_KEY: __version__})
        with atomic_files(path / "model") as tmp_dir:
            self.hf_model.save_pretrained(tmp_dir, safe_serialization=True)
            self.model.attrs["tokenizer"].save_pretrained(tmp_dir)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "BertNER":
        """Read what `to_disk` wrote; local files only, so `spacy.load` never uses the network.

        Settings written by another version that this one does not know are refused (they
        would be silently ignored otherwise); settings an older version did not write keep
        this pipeline's config values.
        """
        path = Path(path)
        cfg_path, model_path = path / "cfg", path / "model"
        try:
            saved = srsly.read_json(cfg_path)
        except (OSError, ValueError) as err:
            raise ModelLoadError(
                f"{cfg_path}: cannot read the settings ({one_line(err)})"
            ) from None
        if not isinstance(saved, dict):
            raise ModelLoadError(f"{cfg_path}: expected a JSON object of settings")
        version = saved.pop(VERSION_KEY, None)
        unknown = sorted(set(saved) - set(self.cfg))
        if unknown:
            raise ModelLoadError(
                f"{cfg_path}: written by spacy-bert-ner {version or '(unknown version)'} with "
                f"settings this version ({__version__}) does not know: {', '.join(unknown)}. "
                "Load it with the version that saved it"
                + (f" (pip install spacy-bert-ner=={version})" if version else "")
            )
        if not model_path.is_dir():
            raise ModelLoadError(f"{model_path}: missing; the saved pipeline is incomplete")
        self.cfg.update(saved)
        hf_model, tokenizer = load_pretrained(model_path)
        set_transformer(self.model, hf_model, tokenizer)
        self._tag_scheme = None
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            self.to_disk(tmp)
            files = {
                str(p.relative_to(tmp)): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()
            }
        return srsly.msgpack_dumps(files)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> "BertNER":
        files: dict[str, bytes] = srsly.msgpack_loads(bytes_data)
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(data)
            return self.from_disk(tmp)


def bad_gold_entities(
    example: Example, biluo: Sequence[str | None], labels: Iterable[str]
) -> list[tuple[Span, str]]:
    """Gold entities of `example` that training cannot learn, each with what is wrong.

    `biluo` is `example.get_aligned_ner()`. spaCy gives None to the predicted tokens of an
    entity whose edges fall inside a predicted token, as it does to unannotated tokens; a
    None token whose reference tokens belong to an entity tells the two apart.
    """
    ref = example.reference
    known = set(labels)
    found: dict[tuple[int, int], tuple[Span, str]] = {}
    for i in np.flatnonzero([tag is None for tag in biluo]).tolist():
        for j in example.alignment.x2y[i].tolist():
            if ref[j].ent_iob_ not in ("B", "I"):
                continue
            entity = next(ent for ent in ref.ents if ent.start <= j < ent.end)
            if (entity.start, entity.end) not in found:
                x_tokens = dict.fromkeys(example.alignment.y2x[entity.start : entity.end].tolist())
                tokens = [example.predicted[k].text for k in x_tokens]
                found[entity.start, entity.end] = (
                    entity,
                    f"does not align with the predicted tokens {tokens!r}: an edge falls "
                    "inside a token",
                )
    for entity in ref.ents:
        if entity.label_ not in known and (entity.start, entity.end) not in found:
            found[entity.start, entity.end] = (
                entity,
                f"has a label this component does not predict (its labels: "
                f"{', '.join(sorted(known)) or 'none'})",
            )
    return [found[key] for key in sorted(found)]


def _runs(doc: Doc, mask: np.ndarray) -> list[Span]:
    """The spans of consecutive tokens where `mask` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [doc[start:end] for start, end in zip(edges[::2], edges[1::2], strict=True)]


def _excerpt(doc: Doc, limit: int = 60) -> str:
    text = " ".join(doc.text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log_softmax(logits: Any, xp: Any) -> Any:
    """Row-wise log-softmax with `xp` (numpy or cupy)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
