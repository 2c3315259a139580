"""Annotate many documents: a trained pipeline over JSONL (or Parquet) records -> JSONL entities.

`python -m spacy_bert_ner annotate` runs this module. Two engines share everything but the
scheduling, so they write the same lines:

- `local`: one `nlp.pipe` stream in this process (`n_process` workers on CPU); the output is in
  input order.
- `ray`: Ray Data actors, each loading the pipeline once (`annotate_ray.py`, imported only for
  this engine, so the core never needs Ray); the output is keyed by id, in no set order.

Records. Each non-blank input line (JSONL) or row (Parquet) is a record with a 1-based line
(row) number. Its id is the `id_field` value, a string or an integer, or the line number when
the field is absent or null (so files without ids work, and a rerun gives the same ids). Ids
are compared as JSON text: 7 and "7" differ. A record whose id an earlier line already has is
a duplicate: an error record, while the first one is annotated.

Output lines, the same bytes whichever engine wrote them:
`{"id":ID,"entities":[{"start_char":..,"end_char":..,"label":..,"text":..,"score":..}]}`
(compact separators, raw UTF-8, scores rounded to `SCORE_DIGITS`). Scores come from float
arithmetic whose last bits depend on which documents share a batch (padding changes summation
order), so two runs batched differently can, rarely, differ in a score's last digit.

Errors. A record that cannot be annotated (not JSON, no string text, an id that is neither a
string nor an integer, a duplicate id, or a pipeline failure) becomes an errors-file line
`{"id":ID,"line":N,"error":"why"}` and the job goes on. A record whose line is not a JSON
object has no id: `"id":null`.

Resume. Output and errors are appended and flushed batch by batch. A rerun with the same input
and output first reads both files (cutting off a torn last line left by a crash) and skips the
records already written: an id found in the output, or an (id, line) pair found in the errors
file. Nothing is written twice; delete both files to start over.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch
from tqdm import tqdm
from wasabi import msg

from .errors import BertNERError
from .loading import load_pipeline
from .pipe import SCORE_EXTENSION, BertNER

ENGINES = ("local", "ray")
NO_ID = "null"  # the id (as JSON text) of a line that is not a JSON object
SCORE_DIGITS = 4
ERRORS_SUFFIX = ".errors.jsonl"
# What a record became; every record gives exactly one result.
ANNOTATED, ERROR, SKIPPED = "annotated", "error", "skipped"
Result = tuple[str, str]  # (ANNOTATED | ERROR | SKIPPED, the line to write; "" when skipped)
PARQUET_ROWS_PER_BATCH = 1024

_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


@dataclass(frozen=True)
class Record:
    """One input record. `text` is None when `error` says why it cannot be annotated."""

    line: int
    id: str  # the id as JSON text: the key for duplicates and resume
    text: str | None
    error: str | None = None
    done: bool = False  # written by an earlier run: skipped


# -- reading records --------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _JSON_KINDS.get(type(value), f"a {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_record(line: int, value: Any, text_field: str, id_field: str) -> Record:
    """The record of input line `line`, whose parsed value (a JSON value or a row) is `value`."""
    if not isinstance(value, dict):
        return Record(line, NO_ID, None, f"not a JSON object but {_kind(value)}")
    raw_id = value.get(id_field)
    if raw_id is None:
        record_id = str(line)
    elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        record_id = _dumps(raw_id)
    else:
        return Record(
            line, NO_ID, None, f"{id_field!r} is {_kind(raw_id)}, not a string or an integer"
        )
    text = value.get(text_field)
    if text is None:
        return Record(line, record_id, None, f"{text_field!r} is missing or null")
    if not isinstance(text, str):
        return Record(line, record_id, None, f"{text_field!r} is {_kind(text)}, not a string")
    return Record(line, record_id, text)


def jsonl_records(lines: Iterable[bytes], text_field: str, id_field: str) -> Iterator[Record]:
    """Records from the raw lines of a JSONL file; blank lines are not records."""
    for line_no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError as err:  # also invalid UTF-8 (UnicodeDecodeError)
            yield Record(line_no, NO_ID, None, f"not valid JSON: {err}")
            continue
        yield make_record(line_no, value, text_field, id_field)


def open_parquet(source: Any, name: str | Path) -> Any:
    """A `pyarrow.parquet.ParquetFile` of `source` (a path or a random-access file)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise BertNERError("reading Parquet needs pyarrow: pip install pyarrow") from err
    try:
        return pq.ParquetFile(source)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
        raise BertNERError(f"{name}: not a readable Parquet file: {err}") from err


def parquet_records(
    source: Any, text_field: str, id_field: str, name: str | Path = ""
) -> Iterator[Record]:
    """Records from a Parquet file (a path or a random-access file), reading two columns only."""
    parquet = open_parquet(source, name or source)
    names = set(parquet.schema_arrow.names)
    columns = [column for column in dict.fromkeys((id_field, text_field)) if column in names]
    line = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_ROWS_PER_BATCH, columns=columns):
        rows = batch.to_pylist() if columns else [{}] * batch.num_rows
        for row in rows:
            line += 1
            yield make_record(line, row, text_field, id_field)


def is_parquet(path: str | Path) -> bool:
    return str(path).endswith(".parquet")


def read_records(path: Path, text_field: str = "text", id_field: str = "id") -> Iterator[Record]:
    """The records of a JSONL or (by its `.parquet` suffix) Parquet file, in file order."""
    if is_parquet(path):
        yield from parquet_records(path, text_field, id_field)
        return
    with path.open("rb") as lines:
        yield from jsonl_records(lines, text_field, id_field)


# -- resume and duplicates --------------------------------------------------------------------


@dataclass
class Done:
    """What earlier runs wrote: the ids in the output and the (id, line) pairs in the errors."""

    ids: set[str] = field(default_factory=set)
    errors: set[tuple[str, int]] = field(default_factory=set)


def _written_lines(path: Path, keys: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The complete lines of a file this module appends to; a torn last line is cut off."""
    if not path.exists():
        return
    with path.open("r+b") as file:
        complete = 0  # bytes up to the end of the last complete line
        for line_no, raw in enumerate(file, 1):
            if not raw.endswith(b"\n"):
                file.truncate(complete)
                return
            complete += len(raw)
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if not isinstance(value, dict) or not all(key in value for key in keys):
                raise BertNERError(
                    f"{path}:{line_no}: not a line written by annotate (no {' or '.join(keys)});"
                    " is this the right output file?"
                )
            yield line_no, value


def read_done(output: Path, errors: Path) -> Done:
    """Read (and repair) the output and errors files of an earlier run, if any."""
    done = Done()
    for _, value in _written_lines(output, ("id", "entities")):
        done.ids.add(_dumps(value["id"]))
    for _, value in _written_lines(errors, ("id", "line", "error")):
        done.errors.add((_dumps(value["id"]), value["line"]))
    return done


class FirstLines:
    """The first line of each id, for duplicate checks.

    Local reads the input in order and learns the first lines as it goes; Ray gets them for
    the repeated ids only, from a group-by over the whole input (`repeated`).
    """

    def __init__(self, repeated: dict[str, int] | None = None) -> None:
        self.learn = repeated is None
        self.lines: dict[str, int] = dict(repeated or {})

    def of(self, record: Record) -> int:
        if record.id == NO_ID:
            return record.line
        if self.learn:
            return self.lines.setdefault(record.id, record.line)
        return self.lines.get(record.id, record.line)


def triage(records: Iterable[Record], done: Done, first_lines: FirstLines) -> Iterator[Record]:
    """Mark records an earlier run wrote as done, and duplicates of an earlier id as errors."""
    for record in records:
        first = first_lines.of(record)  # before skipping: local learns from every record
        if (record.id, record.line) in done.errors or (
            first == record.line and record.id in done.ids
        ):
            yield replace(record, done=True)
        elif first != record.line:
            yield replace(record, text=None, error=f"duplicate id: first on line {first}")
        else:
            yield record


# -- annotating -------------------------------------------------------------------------------


def _drop_failed_batch(proc_name: Any, proc: Any, docs: Any, error: Exception) -> None:
    """spaCy error handler: let `nlp.pipe` go on without a failed batch; its docs are retried
    one by one by `Annotator.results`, which finds them missing from the stream."""


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def entity_getter(nlp: Language) -> Callable[[Doc], Sequence[Span]]:
    """Where the pipeline's entities are: `doc.ents`, or the `bert_ner` pipe's `spans_key`."""
    keys = {pipe.cfg["spans_key"] for _, pipe in nlp.pipeline if isinstance(pipe, BertNER)}
    keys.discard(None)
    if len(keys) == 1:
        key = keys.pop()
        return lambda doc: sorted(doc.spans.get(key, []))
    return lambda doc: doc.ents


def output_line(record: Record, spans: Sequence[Span]) -> str:
    entities = []
    for span in spans:
        score = span._.get(SCORE_EXTENSION)
        entities.append(
            {
                "start_char": span.start_char,
                "end_char": span.end_char,
                "label": span.label_,
                "text": span.text,
                "score": None if score is None else round(float(score), SCORE_DIGITS),
            }
        )
    return f'{{"id":{record.id},"entities":{_dumps(entities)}}}\n'


def error_line(record: Record) -> str:
    return f'{{"id":{record.id},"line":{record.line},"error":{_dumps(record.error)}}}\n'


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


# -- the command ------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a run did. `seconds`: the wall time of writing, from the first record read to the
    end; it leaves out loading the local pipeline, but holds Ray's start-up (actors, loads)."""

    annotated: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def docs_per_second(self) -> float:
        processed = self.annotated + self.errors
        return processed / self.seconds if self.seconds > 0 else 0.0


def default_errors_path(output: Path) -> Path:
    """`out.jsonl` -> `out.errors.jsonl`."""
    return output.with_name(output.stem + ERRORS_SUFFIX)


def check_arguments(
    model: str,
    input_path: Path,
    output: Path,
    errors: Path,
    engine: str,
    batch_size: int,
    workers: int,
    gpus_per_worker: float,
) -> None:
    """One-line errors for arguments that cannot work, before any pipeline is loaded."""
    if engine not in ENGINES:
        raise BertNERError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if not input_path.exists():
        raise BertNERError(f"input not found: {input_path}")
    if not input_path.is_file():
        raise BertNERError(f"input is not a file: {input_path}")
    if len({input_path.resolve(), output.resolve(), errors.resolve()}) < 3:
        raise BertNERError(f"{output}: input, output and errors must be three different files")
    if output.is_dir() or errors.is_dir():
        raise BertNERError(f"{output if output.is_dir() else errors} is a directory, not a file")
    if batch_size < 1 or workers < 1:
        raise BertNERError(f"--batch-size and --workers must be >= 1, not {batch_size}/{workers}")
    if is_parquet(input_path):
        open_parquet(input_path, input_path)  # fails here, not in a Ray read task
    if gpus_per_worker < 0:
        raise BertNERError(f"--gpus-per-worker must be >= 0, not {gpus_per_worker}")
    if engine == "local" and gpus_per_worker > 0 and workers > 1:
        raise BertNERError("the local engine uses one GPU in one process: --workers 1 (or ray)")


def local_results(
    model: str,
    input_path: Path,
    done: Done,
    *,
    text_field: str,
    id_field: str,
    batch_size: int,
    workers: int,
    gpus_per_worker: float,
) -> Iterator[list[Result]]:
    """The results of the local engine, one list per batch, in input order.

    The pipeline loads at the call, so a model that cannot load fails before any file is
    touched; the records are read as the results are consumed.
    """
    nlp = load_pipeline(model, gpu_id=0 if gpus_per_worker > 0 else -1)
    records = triage(read_records(input_path, text_field, id_field), done, FirstLines())
    annotator = Annotator(nlp, batch_size, n_process=workers)
    return minibatch(annotator.results(records), batch_size)


def annotate(
    model: str,
    input_path: Path,
    output: Path,
    *,
    errors: Path | None = None,
    engine: str = "local",
    text_field: str = "text",
    id_field: str = "id",
    batch_size: int = 256,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
) -> Tally:
    """Annotate the records of `input_path` with pipeline `model`, appending to `output`.

    Errors go to `errors` (default: `default_errors_path(output)`). With `engine="ray"`,
    `workers` actors with `gpus_per_worker` GPUs each run on the Ray cluster that
    `ray.init()` finds (`RAY_ADDRESS`, or a local one), unless Ray is already initialised.
    """
    input_path, output = Path(input_path), Path(output)
    errors = Path(errors) if errors is not None else default_errors_path(output)
    check_arguments(model, input_path, output, errors, engine, batch_size, workers, gpus_per_worker)
    if engine == "ray":
        try:
            from .annotate_ray import ray_results
        except ModuleNotFoundError as err:
            if err.name not in ("ray", "pyarrow"):
                raise
            raise BertNERError("--engine ray needs Ray: pip install 'spacy-bert-ner[ray]'") from err
        # Ray reports an actor that failed to load as a multi-page traceback without its
        # cause; loading the pipeline here once turns that into the usual one line.
        load_pipeline(model)
    done = read_done(output, errors)
    options: dict[str, Any] = {
        "text_field": text_field,
        "id_field": id_field,
        "batch_size": batch_size,
        "workers": workers,
        "gpus_per_worker": gpus_per_worker,
    }
    if engine == "ray":
        batches = ray_results(model, input_path, done, **options)
    else:
        batches = local_results(model, input_path, done, **options)
    tally = Tally()
    output.parent.mkdir(parents=True, exist_ok=True)
    errors.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (
        output.open("a", encoding="utf8") as out,
        errors.open("a", encoding="utf8") as failed,
        tqdm(unit="doc", desc=f"annotating ({engine})", disable=not progress) as bar,
    ):
        for batch in batches:
            _write(batch, out, failed, tally)
            bar.update(sum(kind != SKIPPED for kind, _ in batch))
    tally.seconds = time.perf_counter() - start
    if progress:
        msg.good(
            f"{tally.annotated} annotated, {tally.errors} errors, {tally.skipped} already "
            f"done ({tally.docs_per_second:.1f} docs/s)"
        )
        msg.text(f"entities: {output}")
        msg.text(f"errors: {errors}")
    return tally


def _write(batch: Sequence[Result], out: Any, failed: Any, tally: Tally) -> None:
    """Append one batch and flush, so a crash loses at most the batch being written."""
    annotated = [line for kind, line in batch if kind == ANNOTATED]
    errors = [line for kind, line in batch if kind == ERROR]
    out.write("".join(annotated))
    out.flush()
    failed.write("".join(errors))
    failed.flush()
    tally.annotated += len(annotated)
    tally.errors += len(errors)
    tally.skipped += len(batch) - len(annotated) - len(errors)
