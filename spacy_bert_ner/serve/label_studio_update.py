"""The Label Studio backend's updates: annotations in, a better pipeline swapped in.

Each annotation Label Studio reports (its webhook) is kept as a document, the latest one per
task. Once `update_every` annotations have come in since the last update, an update starts in
a background thread, one at a time: a copy of the served pipeline continues training on every
annotation kept, with rehearsal (`experiments.continual.continue_training`, the pipeline's own
recipe: its config's optimizer, peak rate and dropout) on the texts Label Studio has asked
predictions for, so the model learns the corrections without forgetting the rest. The new
pipeline is written to `models_dir/<model_version>` (every earlier version stays on disk, the
pipeline the service started with untouched), warmed up, and only then swapped in on the event
loop: one assignment, so every request is answered whole by one version (a batch already
running finishes on the previous one, which stays loaded until then).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from ..annotate.annotator import Annotator
from ..experiments.continual import ContinualSettings, continue_training
from ..pipeline.loading import single_bert_ner_pipe
from .service import WARM_UP_TEXT, EntityService

logger = logging.getLogger(__name__)
#: Texts kept for rehearsal: the latest Label Studio asked predictions for.
REHEARSAL_TEXTS = 2000


@dataclass(frozen=True)
class LabelStudioSettings:
    """Where updated pipelines go, and how many new annotations start an update."""

    models_dir: Path
    update_every: int = 10
    epochs: int = 3


def model_version(nlp: Language) -> str:
    """The version Label Studio shows for the pipeline the service starts with."""
    return f"{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version', '0')}"


def updated_pipeline(
    nlp: Language, docs: list[Doc], texts: list[str], epochs: int
) -> tuple[Language, int]:
    """A copy of `nlp` trained on the annotated `docs`, rehearsing on `texts` (the
    annotated texts when there are none); the copy and its number of steps."""
    nlp = copy.deepcopy(nlp)
    _, pipe = single_bert_ner_pipe(nlp, "the Label Studio backend")
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    rehearsed = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in texts or [d.text for d in docs]]
    settings = ContinualSettings(new_type=pipe.labels[0], epochs=epochs)
    _, steps, _ = continue_training(nlp, examples, rehearsed, settings)
    nlp(WARM_UP_TEXT)
    return nlp, steps


class ModelUpdater:
    """The annotations kept, the update running (one at a time) and the served version."""

    def __init__(self, service: EntityService, settings: LabelStudioSettings) -> None:
        self.service = service
        self.settings = settings
        self.version = model_version(service.annotator.nlp)
        self.versions = [self.version]  # every version served, the current last
        self.by_vocab = {id(service.annotator.nlp.vocab): self.version}
        self.annotated: dict[str, Doc] = {}  # by task
        self.new = 0  # annotations since the last update started
        self.texts: deque[str] = deque(maxlen=REHEARSAL_TEXTS)
        self.running: Future[tuple[Language, int]] | None = None
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="label-studio-update")
        self.on_swap: Callable[[str], None] | None = None  # tests wait on it

    def seen(self, texts: list[str]) -> None:
        """Texts Label Studio asked predictions for: what rehearsal keeps the model good on."""
        self.texts.extend(texts)

    def annotation(self, task: str, doc: Doc) -> None:
        """An annotation of `task`, replacing an earlier one; may start an update."""
        self.annotated[task] = doc
        self.new += 1
        if self.new >= self.settings.update_every:
            self.start_update()

    def start_update(self) -> bool:
        """Start an update on the annotations kept, unless one runs or there are none."""
        if self.running is not None or not self.annotated:
            return False
        self.new = 0
        nlp = self.service.annotator.nlp
        docs, texts = list(self.annotated.values()), list(self.texts)
        version = f"{self.versions[0]}+ls{len(self.versions)}"
        loop = asyncio.get_running_loop()
        self.running = self.worker.submit(self._update, nlp, docs, texts, version)
        self.running.add_done_callback(
            lambda done: loop.call_soon_threadsafe(self._finish, done, version)
        )
        logger.warning("Label Studio: updating the pipeline on %d annotations", len(docs))
        return True

    def _update(
        self, nlp: Language, docs: list[Doc], texts: list[str], version: str
    ) -> tuple[Language, int]:
        """On the worker thread: train the copy and write it to `models_dir/version`."""
        updated, steps = updated_pipeline(nlp, docs, texts, self.settings.epochs)
        self.settings.models_dir.mkdir(parents=True, exist_ok=True)
        updated.to_disk(self.settings.models_dir / version)
        return updated, steps

    def version_of(self, doc: Doc) -> str:
        """The version that annotated `doc`: a batch that ran across a swap was the previous
        one's (each pipeline has its own vocab)."""
        return self.by_vocab.get(id(doc.vocab), self.version)

    def _finish(self, done: Future[tuple[Language, int]], version: str) -> None:
        """On the event loop: swap the new pipeline in, or log why not."""
        self.running = None
        try:
            nlp, steps = done.result()
        except Exception:
            logger.exception("Label Studio: the update failed; %s is still served", self.version)
            return
        self.by_vocab = {id(self.service.annotator.nlp.vocab): self.version, id(nlp.vocab): version}
        self.service.annotator = self.service.batcher.annotator = Annotator(
            nlp, self.service.annotator.batch_size
        )
        self.version = version
        self.versions.append(version)
        logger.warning("Label Studio: now serving %s (%d steps)", version, steps)
        if self.on_swap is not None:
            self.on_swap(version)
        if self.new >= self.settings.update_every:
            self.start_update()
