"""The `bert_ner` component: a trainable spaCy pipe around a token-classifier model.

The data path: `models.windows` (Doc -> wordpiece windows), `models.token_classifier`
(windows -> one logit row per token), `tags` (logits -> constrained tag sequence -> entity
spans) and `pipeline.spans` (spans -> `doc.ents` or `doc.spans[key]`, with scores). This module
ties them to spaCy's `TrainablePipe` API; training reads its gold through `pipeline.gold` and
its losses from `pipeline.losses`.
"""

from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer
from thinc.types import Floats2d

from ..models import model_api
from ..models.architectures import build_token_classifier, default_model_config
from ..models.head import NEW_TAG_MARGIN
from ..models.rows import split_rows
from ..models.runtime import limit_threads_in_forked_children
from ..tags import NO_TARGET, TagScheme, tags_for_head
from .calibrator import calibrated, check_threshold, threshold_filter
from .gold import GoldChecker, gold_view, labels_in
from .losses import log_softmax
from .mentions import TrainingMentions
from .rehearsal import rehearsal_loss, rehearsal_tutor
from .scoring import SCORER
from .serialization import bytes_to_directory, directory_to_bytes, read_component, write_component
from .spans import DecodedDoc, decode_entities, install_extensions, write_entities
from .teacher import Distillation, gold_and_teacher_loss
from .throughput import Throughput


@Language.factory(
    "bert_ner",
    assigns=["doc.ents", "doc.spans", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": default_model_config(),
        "scheme": None,
        "spans_key": None,
        "overwrite_ents": True,
        "on_bad_gold": "error",
        "threshold": 0.0,
        "distill_weight": 0.5,
        "distill_temperature": 1.0,
        "scorer": {"@scorers": SCORER},
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
    threshold: float | str,
    distill_weight: float,
    distill_temperature: float,
    scorer: Callable | None,
) -> "BertNER":
    """Create a `bert_ner` pipe.

    model: a `spacy_bert_ner.TokenClassifier.v1` block, or just a hub name / directory
        (shorthand for that block with default settings); or a
        `spacy_bert_ner.ListenerTokenClassifier.v1` block to read a shared `transformer`.
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
    threshold: the minimum score (`span._.bert_ner_score`, 0-1) of a predicted entity; the
        tokens of one below it are O. 0 keeps every entity. Trades recall for precision;
        `spacy find-threshold PIPELINE DEV bert_ner threshold ents_f` chooses it on dev data.
        "guaranteed": each label's threshold that `calibrate --target-precision` chose.
    distill_weight: w in the loss (1 - w) * gold cross-entropy + w * KL(teacher || model),
        used only for training examples that carry teacher distributions (`pipeline.teacher`).
    distill_temperature: T > 0 at which the KL term compares teacher and model, both softened
        (`losses.distillation_loss`); 1 compares them as they are.
    """
    return BertNER(
        nlp.vocab,
        build_token_classifier(name=model) if isinstance(model, str) else model,
        name,
        scheme=scheme,
        spans_key=spans_key,
        overwrite_ents=overwrite_ents,
        on_bad_gold=on_bad_gold,
        threshold=threshold,
        distill_weight=distill_weight,
        distill_temperature=distill_temperature,
        scorer=scorer,
    )


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
        threshold: float | str = 0.0,
        distill_weight: float = 0.5,
        distill_temperature: float = 1.0,
        scorer: Callable | None = None,
    ) -> None:
        # Training-time choices, not part of the trained model: kept out of the saved cfg,
        # so a loaded pipeline takes them from its config (and its overrides).
        self._gold_checker = GoldChecker(on_bad_gold)
        self.distillation = Distillation(distill_weight, distill_temperature)
        install_extensions()
        limit_threads_in_forked_children()
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: dict[str, Any] = {
            "labels": [],
            "scheme": scheme,
            "spans_key": spans_key,
            "overwrite_ents": overwrite_ents,
            "threshold": check_threshold(threshold),
            # Fitted on dev by `calibrate`, saved with the model (`pipeline.calibrator`).
            "temperature": 1.0,
            "calibrator": None,
            "guaranteed_thresholds": None,
        }
        #: Training mentions (`initialize`, `calibrate --train`), for the feature calibrator.
        self.mentions = TrainingMentions()
        self._tag_scheme: TagScheme | None = None
        # A frozen copy of the model that `rehearse` pulls toward; `nlp.resume_training()`
        # (and `spacy train` for a sourced component) sets it.
        self._rehearsal_model: Model[list[Doc], list[Floats2d]] | None = None
        #: Words trained and seconds spent in `update`/`finish_update` (the training logger's).
        self.throughput = Throughput()
        #: Tokens in the loss since the last `finish_update`: its gradient is a mean over
        #: them, which data-parallel training needs to weigh each worker's (`gradients`).
        self.loss_tokens = 0

    @property
    def on_bad_gold(self) -> str:
        return self._gold_checker.action

    @property
    def skipped_gold_count(self) -> int:
        """Bad gold entities that `on_bad_gold = "skip"` has left out of the loss so far."""
        return len(self._gold_checker.skipped)

    @property
    def head_lr_scale(self) -> float:
        """The head's learning-rate multiplier (`model.head_lr_scale`)."""
        return float(model_api.architecture(self.model).settings.head_lr_scale)

    @property
    def tag_scheme(self) -> TagScheme:
        """The model's tags read in the configured (or detected) scheme."""
        model_api.make_ready(self.model)
        tags = tuple(model_api.current_tags(self.model))
        if self._tag_scheme is None or self._tag_scheme.tags != tags:
            self._tag_scheme = TagScheme.from_tags(tags, self.cfg["scheme"])
        return self._tag_scheme

    @property
    def labels(self) -> tuple[str, ...]:
        if model_api.is_ready(self.model):
            return self.tag_scheme.labels
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> list[str]:
        return list(self.labels)

    @property
    def hf_model(self) -> Any:
        """The standalone architecture's Hugging Face model, loaded from the configured name
        on first use (a listener has none: its encoder is the `transformer` component's)."""
        return model_api.own_model(self.model)

    def add_label(self, label: str) -> int:
        """Add an entity type; returns 0 if the component already predicts it, else 1.

        Before the model is loaded, the type is recorded and `initialize` sizes the head.
        On a loaded model the head grows at once (`resize_output`): existing tags' rows are
        kept bit for bit, the type's tags in the component's scheme are appended
        `NEW_TAG_MARGIN` under O, so every predicted entity stays what it was until training.
        """
        if label in self.labels:
            return 0
        if not model_api.is_ready(self.model):
            self.cfg["labels"] = sorted({*self.labels, label})
            return 1
        scheme = self.tag_scheme
        added = TagScheme.from_labels([label], scheme.name).tags
        tags = [*scheme.tags, *(tag for tag in added if tag not in scheme.tags)]
        self.model.attrs["resize_output"](self.model, tags, below_outside=NEW_TAG_MARGIN)
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
        if labels is None:
            labels = labels_in(get_examples(), self.cfg["spans_key"])
        wanted = {*labels, *self.cfg["labels"]}
        head_tags = tags_for_head(model_api.declared_tags(self.model), wanted, self.cfg["scheme"])
        # thinc's Y is an output sample that sizes the last layer; a token classifier's output
        # is sized by its tag set, which is what it takes (see `token_classifier.init`). A
        # listener's head also sizes its input from the vectors of a few docs, as spaCy's.
        doc_sample = [example.x for example in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample, Y=cast(Any, head_tags))
        self.cfg["labels"] = list(self.labels)
        self.mentions = TrainingMentions.from_docs(eg.reference for eg in get_examples())
        # Fail before training starts, not at the batch that holds the first bad entity.
        self._gold_checker.check_all(get_examples(), self.cfg["spans_key"], self.labels)

    def predict(self, docs: Iterable[Doc]) -> list[Floats2d]:
        """Logits per token, for the whole batch in one length-sorted pass."""
        docs = list(docs)
        # Loaded outside inference mode, so the weights stay trainable.
        model_api.make_ready(self.model)
        with torch.inference_mode():
            return self.model.predict(docs)

    def set_annotations(self, docs: Iterable[Doc], scores: list[Floats2d]) -> None:
        docs = list(docs)
        keep = threshold_filter(self.cfg, self.name)
        for doc, decoded in zip(docs, self.decode(docs, scores), strict=True):
            write_entities(
                doc,
                [(span, p) for span, p in decoded.entities if keep(span, p)],
                spans_key=self.cfg["spans_key"],
                overwrite=self.cfg["overwrite_ents"],
            )

    def decode(self, docs: list[Doc], scores: list[Floats2d]) -> list[DecodedDoc]:
        """Entities with their probabilities from `predict`'s logits, scaled by the fitted
        `temperature` (1 unless `calibrate` set one), then rescored by the feature calibrator
        when `calibrate` fitted one. Dividing logits by one constant leaves every token's
        ranking of paths, and rescoring leaves the spans, so the entities stay as they were."""
        temperature = self.cfg["temperature"]
        log_probs = [
            log_softmax(self.model.ops.to_numpy(doc_scores) / temperature, np)
            for doc_scores in scores
        ]
        decoded = decode_entities(docs, log_probs, self.tag_scheme)
        return calibrated(docs, decoded, self.cfg["calibrator"], self.mentions, self.name)

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """One step of token cross-entropy; dropout is the model's own (its config's)."""
        return self._step("BertNER.update", examples, self.get_loss, sgd, losses)

    def finish_update(self, sgd: Optimizer) -> None:
        with self.throughput.measure():
            super().finish_update(sgd)
        self.loss_tokens = 0

    def get_loss(
        self, examples: Iterable[Example], scores: list[Floats2d]
    ) -> tuple[float, list[Floats2d]]:
        """Mean cross-entropy over tokens whose gold tag is known (misaligned ones are skipped),
        mixed with the KL divergence from the teachers by `distill_weight`, at
        `distill_temperature`, where the examples carry teacher distributions (see `teacher`)."""
        examples = list(examples)
        xp = self.model.ops.xp
        targets = np.concatenate([self._targets(eg) for eg in examples])
        self.loss_tokens += int((targets != NO_TARGET).sum())
        logits, gold = xp.concatenate(scores), xp.asarray(targets)
        loss, d_logits = gold_and_teacher_loss(
            examples, logits, gold, self.tag_scheme.tags, self.distillation, self.name, xp
        )
        return loss, split_rows(d_logits, [len(s) for s in scores])

    def _targets(self, example: Example) -> np.ndarray:
        """Tag ids for one example's tokens, `tags.NO_TARGET` where the loss ignores them: no gold
        annotation, or a bad entity that on_bad_gold skips."""
        gold = gold_view(example, self.cfg["spans_key"])
        biluo = gold.get_aligned_ner()
        self._gold_checker.check(gold, biluo, self.labels)
        return self.tag_scheme.tag_ids_from_biluo(biluo)

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
        the examples' texts (annotations unread; `losses.rehearsal_kl`), through `update`'s
        step (optimizer, schedules and accumulation alike; `sgd=None` only accumulates).
        """
        tutor = rehearsal_tutor(self.model, self._rehearsal_model, self.name)
        get_loss = partial(rehearsal_loss, tutor, self.tag_scheme.tags, self.name)
        return self._step("BertNER.rehearse", examples, get_loss, sgd, losses)

    def _step(
        self,
        caller: str,
        examples: Iterable[Example],
        get_loss: Callable[[list[Example], list[Floats2d]], tuple[float, list[Floats2d]]],
        sgd: Optimizer | None,
        losses: dict[str, float] | None,
    ) -> dict[str, float]:
        """The training step `update` and `rehearse` share: the forward pass on the examples'
        predicted docs, `get_loss`'s gradient back through the model, then the optimizer's
        step when there is an `sgd` (else the gradients accumulate). A batch without a token
        changes nothing."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, caller)
        if not any(len(eg.predicted) for eg in examples):
            return losses
        with self.throughput.measure(words=sum(len(eg.predicted) for eg in examples)):
            scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
            loss, d_scores = get_loss(examples, scores)
            backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        validate_examples(examples, "BertNER.score")
        assert self.scorer is not None
        return self.scorer(examples, spans_key=self.cfg["spans_key"], **kwargs)

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Write `cfg` and `model` (see `serialization`); either can be left out by `exclude`.
        The model directory also holds the ONNX graph when the backend is onnxruntime.

        Every file is replaced whole (see `io`): `spacy train` rewrites model-last at each
        evaluation, and a run killed during that write must still leave a model to resume from.
        """
        save = partial(model_api.save_model, self.model)
        write_component(path, self.cfg, save, exclude, self.mentions)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "BertNER":
        """Read what `to_disk` wrote; local files only, so `spacy.load` never uses the network."""
        load = partial(model_api.load_model, self.model)
        self.mentions = read_component(path, self.cfg, load, exclude)
        self._tag_scheme = None
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return directory_to_bytes(lambda tmp: self.to_disk(tmp, exclude=exclude))

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> "BertNER":
        def read(tmp: Path) -> "BertNER":
            self.from_disk(tmp, exclude=exclude)
            model_api.detach_from_directory(self.model)  # the temporary directory goes next
            return self

        return bytes_to_directory(bytes_data, read)
