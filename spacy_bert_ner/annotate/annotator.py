"""A loaded pipeline applied to a stream of records, one result per record, in order.

Both engines run this: `local` in its own process, `ray` inside each actor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..pipeline.loading import bert_ner_pipes
from .progress import Done, FirstLines, triage
from .records import ANNOTATED, ERROR, SKIPPED, Record, Result, error_line, output_line


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


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def entity_getter(nlp: Language) -> Callable[[Doc], Sequence[Span]]:
    """Where the pipeline's entities are: `doc.ents`, or the `bert_ner` pipe's `spans_key`."""
    keys = {pipe.cfg["spans_key"] for _, pipe in bert_ner_pipes(nlp)}
    keys.discard(None)
    if len(keys) == 1:
        key = keys.pop()
        return lambda doc: sorted(doc.spans.get(key, []))
    return lambda doc: doc.ents


class Annotator:
    """A loaded pipeline that turns a stream of records into one result per record, in order.

    Docs are made here (so a text the tokenizer rejects, e.g. longer than `nlp.max_length`,
    is an error record) and go through one `nlp.pipe` stream. A batch that fails inside the
    pipeline is dropped by the error handler and its records are retried one by one, so one
    bad document costs its batch a retry, not the job.
    """

    def __init__(self, nlp: Language, batch_size: int, n_process: int = 1) -> None:
        self.nlp = nlp
        self.batch_size = batch_size
        self.n_process = n_process
        self.spans = entity_getter(nlp)
        # spaCy types handlers as NoReturn, though it documents ones that return.
        nlp.set_error_handler(_drop_failed_batch)  # type: ignore[arg-type]

    def annotate(
        self, records: Iterable[Record], done: Done, first_lines: FirstLines
    ) -> Iterator[Result]:
        """The loop both engines run: skip what earlier runs wrote, refuse duplicate ids,
        annotate the rest."""
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
                        record = replace(record, text=None, error=_reason(err))
                pending.append(record)
                if doc is not None:
                    yield doc, record.line

        stream = self.nlp.pipe(
            docs(), as_tuples=True, batch_size=self.batch_size, n_process=self.n_process
        )
        for doc, line in stream:
            while pending[0].line != line:
                yield self._result_without_doc(pending.popleft())
            yield ANNOTATED, output_line(pending.popleft(), self.spans(doc))
        while pending:
            yield self._result_without_doc(pending.popleft())

    def _result_without_doc(self, record: Record) -> Result:
        """A record that `nlp.pipe` did not return: done, an error, or from a failed batch."""
        if record.done:
            return SKIPPED, ""
        if record.text is None:
            return ERROR, error_line(record)
        try:
            doc = self.nlp.make_doc(record.text)
            for _, proc in self.nlp.pipeline:  # no error handler: a failure raises here
                doc = proc(doc)
        except Exception as err:
            return ERROR, error_line(replace(record, text=None, error=_reason(err)))
        return ANNOTATED, output_line(record, self.spans(doc))
