"""The annotator core: a loaded pipeline turning texts or records into records and displaCy
docs, one result per input, in order.

Every way of running the pipeline goes through `Annotator`: `annotate`'s two engines (`local`
in its own process, `ray` inside each actor) stream records through `triaged_results`, and both
engines of the `serve` command hand it the batches their batcher gathers (`docs`). So the
lines they write are the same bytes, a failed batch is retried text by text in one place, and
every architecture answers the same metadata. Nothing here needs Ray or HTTP.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from ..about import __version__
from ..models.model_api import describe_model
from ..pipeline.loading import bert_ner_pipes, entity_getter, load_pipeline
from .progress import Done, FirstLines, triage
from .records import (
    ANNOTATED,
    ERROR,
    SKIPPED,
    Record,
    Result,
    entity_records,
    error_line,
    output_line,
)


@dataclass(frozen=True)
class EngineOptions:
    """How an engine reads records and runs the pipeline; both engines take the same."""

    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = 256
    workers: int = 1  # processes (local) or actors (ray)
    gpus_per_worker: float = 0.0


def _drop_failed_batch(proc_name: Any, proc: Any, docs: Any, error: Exception) -> None:
    """spaCy error handler: let `nlp.pipe` go on without a failed batch; its docs are retried
    one by one by `Annotator.results`, which finds them missing from the stream."""


def word_budget_groups(texts: Sequence[str], budget: int) -> list[list[int]]:
    """Indices of `texts` cut, in order, into groups of at most `budget` words (a longer text
    makes a group alone), so one `nlp.pipe` call never holds more than the budget."""
    groups: list[list[int]] = []
    words = 0
    for index, text in enumerate(texts):
        n_words = len(text.split())
        if not groups or words + n_words > budget:
            groups.append([])
            words = 0
        groups[-1].append(index)
        words += n_words
    return groups


class Annotator:
    """A loaded pipeline that turns records or texts into one result each, in order.

    Docs are made here (so a text the tokenizer rejects, e.g. longer than `nlp.max_length`,
    is an error record) and go through `nlp.pipe`. A batch that fails inside the pipeline is
    dropped by the error handler and its texts are retried one by one, so one bad document
    costs its batch a retry, not the job or the other requests batched with it.
    """

    def __init__(self, nlp: Language, batch_size: int = 256, n_process: int = 1) -> None:
        self.nlp = nlp
        self.batch_size = batch_size
        self.n_process = n_process
        self.spans = entity_getter(nlp)
        # spaCy types handlers as NoReturn, though it documents ones that return.
        nlp.set_error_handler(_drop_failed_batch)  # type: ignore[arg-type]

    @classmethod
    def load(
        cls, model: str, *, batch_size: int = 256, n_process: int = 1, gpu: bool = False
    ) -> Annotator:
        """The annotator of pipeline `model` (a directory or a package name); with `gpu`, on
        the first GPU this process sees (Ray sets which one that is)."""
        return cls(load_pipeline(model, gpu_id=0 if gpu else -1), batch_size, n_process)

    def triaged_results(
        self, records: Iterable[Record], done: Done, first_lines: FirstLines
    ) -> Iterator[Result]:
        """The loop both `annotate` engines run: skip what earlier runs wrote, refuse duplicate
        ids (`progress.triage`), annotate the rest."""
        return self.results(triage(records, done, first_lines))

    def results(self, records: Iterable[Record]) -> Iterator[Result]:
        pending: deque[Record] = deque()  # handed to nlp.pipe or passed by, not yet yielded

        def docs() -> Iterator[tuple[Doc, int]]:
            for record in records:
                doc = None
                if record.text is not None and not record.done:
                    try:
                        doc = self.nlp.make_doc(record.text)
                    except Exception as err:
                        record = record.failed(err)
                pending.append(record)
                if doc is not None:
                    yield doc, record.line

        stream = self.nlp.pipe(
            docs(), as_tuples=True, batch_size=self.batch_size, n_process=self.n_process
        )
        for doc, line in stream:
            while pending[0].line != line:
                yield self._result_without_doc(pending.popleft())
            yield ANNOTATED, self.record_line(pending.popleft(), doc)
        while pending:
            yield self._result_without_doc(pending.popleft())

    def _result_without_doc(self, record: Record) -> Result:
        """A record that `nlp.pipe` did not return: done, an error, or from a failed batch."""
        if record.done:
            return SKIPPED, ""
        if record.text is None:
            return ERROR, error_line(record)
        try:
            doc = self.annotate_one(record.text)
        except Exception as err:
            return ERROR, error_line(record.failed(err))
        return ANNOTATED, self.record_line(record, doc)

    def annotate_one(self, text: str) -> Doc:
        """One text through the pipeline without the error handler: a failure raises."""
        doc = self.nlp.make_doc(text)
        for _, proc in self.nlp.pipeline:
            doc = proc(doc)
        return doc

    def docs(self, texts: Sequence[str], batch_words: int) -> list[Doc | Exception]:
        """The doc of each text, or the exception it raised, in order: one `nlp.pipe` call per
        group of at most `batch_words` words (see `word_budget_groups`), the texts of a failed
        group retried one by one. What the service's batcher runs on its worker thread.

        A group of one text (a lone client's request) skips `nlp.pipe` for the path its retry
        takes anyway, one call of each component: the same doc without `nlp.pipe`'s generators
        and error handler around it."""
        results: list[Doc | Exception] = []
        for group in word_budget_groups(texts, batch_words):
            done: dict[int, Doc] = {}
            pairs = ((texts[index], index) for index in group)
            try:
                if len(group) > 1:
                    for doc, index in self.nlp.pipe(pairs, as_tuples=True, batch_size=len(group)):
                        done[index] = doc
            except Exception:  # a text the tokenizer refuses: the rest goes one by one
                pass
            for index in group:
                if index in done:
                    results.append(done[index])
                    continue
                try:
                    results.append(self.annotate_one(texts[index]))
                except Exception as err:
                    results.append(err)
        return results

    def record_line(self, record: Record, doc: Doc) -> str:
        """The line `annotate` writes for a record (with its newline)."""
        return output_line(record, self.spans(doc))

    def displacy(self, record: Record, doc: Doc) -> dict[str, Any]:
        """displaCy's manual format (`displacy.render(..., manual=True)`), the score kept and
        the id as the title."""
        ents = [
            {
                "start": e["start_char"],
                "end": e["end_char"],
                "label": e["label"],
                "score": e["score"],
            }
            for e in entity_records(self.spans(doc))
        ]
        return {"text": doc.text, "ents": ents, "title": json.loads(record.id)}

    def metadata(self) -> dict[str, Any]:
        """Which pipeline answers, with its labels and how each `bert_ner` model runs, read
        through `models.model_api` so every architecture (standalone on torch or ONNX Runtime,
        listener) answers."""
        components = {
            name: {"labels": list(pipe.labels), "model": describe_model(pipe.model)}
            for name, pipe in bert_ner_pipes(self.nlp)
        }
        return {
            "pipeline": {
                "name": self.nlp.meta.get("name"),
                "version": self.nlp.meta.get("version"),
            },
            "components": components,
            "versions": {"spacy": spacy.__version__, "spacy_bert_ner": __version__},
        }
