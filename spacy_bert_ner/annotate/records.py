"""Records in and lines out: reading JSONL or Parquet input, writing entity and error lines.

Each non-blank input line (JSONL) or row (Parquet) is a record with a 1-based line (row)
number. Its id is the `id_field` value, a string or an integer, or the line number when the
field is absent or null (so files without ids work, and a rerun gives the same ids). Ids are
compared as JSON text: 7 and "7" differ.

Output lines, the same bytes whichever engine wrote them:
`{"id":ID,"entities":[{"start_char":..,"end_char":..,"label":..,"text":..,"score":..}]}`
(compact separators, raw UTF-8, scores rounded to `SCORE_DIGITS`). Scores come from float
arithmetic whose last bits depend on which documents share a batch (padding changes summation
order), so two runs batched differently can, rarely, differ in a score's last digit. A record
that cannot be annotated becomes an errors-file line `{"id":ID,"line":N,"error":"why"}`; one
whose line is not a JSON object has no id: `"id":null`.

Lone surrogates (JSON's `"\\ud83d"` alone), which spaCy and UTF-8 refuse, never cost a record:
in a text each becomes U+FFFD, offsets unchanged (see `spacy_bert_ner.text`), so the record is
annotated and an entity's `text` shows U+FFFD where the input had the surrogate; in an id (and
any other output string) each is written as its `\\uXXXX` escape, which reads back as the id
given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spacy.tokens import Span

from ..errors import BertNERError
from ..extras import require
from ..pipeline.spans import SCORE_EXTENSION
from ..text import escape_lone_surrogates, replace_lone_surrogates

NO_ID = "null"  # the id (as JSON text) of a line that is not a JSON object
SCORE_DIGITS = 4
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

    def failed(self, error: BaseException) -> Record:
        """This record as one that cannot be annotated because of `error`."""
        return replace(self, text=None, error=failure_reason(error))


def failure_reason(error: BaseException) -> str:
    """Why a text failed, as error records and the service's 500 say it: the exception's
    type and message. The one wording for every engine and route, so they read alike."""
    return f"{type(error).__name__}: {error}"


def _kind(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _JSON_KINDS.get(type(value), f"a {type(value).__name__}")


def dumps(value: Any) -> str:
    """Compact JSON in raw UTF-8, lone surrogates escaped (so it can always be written)."""
    return escape_lone_surrogates(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def make_record(line: int, value: Any, text_field: str, id_field: str) -> Record:
    """The record of input line `line`, whose parsed value (a JSON value or a row) is `value`."""
    if not isinstance(value, dict):
        return Record(line, NO_ID, None, f"not a JSON object but {_kind(value)}")
    raw_id = value.get(id_field)
    if raw_id is None:
        record_id = str(line)
    elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        record_id = dumps(raw_id)
    else:
        return Record(
            line, NO_ID, None, f"{id_field!r} is {_kind(raw_id)}, not a string or an integer"
        )
    text = value.get(text_field)
    if text is None:
        return Record(line, record_id, None, f"{text_field!r} is missing or null")
    if not isinstance(text, str):
        return Record(line, record_id, None, f"{text_field!r} is {_kind(text)}, not a string")
    return Record(line, record_id, replace_lone_surrogates(text))


def jsonl_records(lines: Iterable[bytes], text_field: str, id_field: str) -> Iterator[Record]:
    """Records from the raw lines of a JSONL file; blank lines are not records."""
    for line_no, raw in enumerate(lines, 1):
        if raw.strip():
            yield parse_line(line_no, raw, text_field, id_field)


def parse_line(line_no: int, raw: bytes, text_field: str, id_field: str) -> Record:
    """The record of one non-blank JSONL line (the service's NDJSON bulk reads them too)."""
    try:
        value = json.loads(raw)
    except ValueError as err:  # also invalid UTF-8 (UnicodeDecodeError)
        return Record(line_no, NO_ID, None, f"not valid JSON: {err}")
    return make_record(line_no, value, text_field, id_field)


def open_parquet(source: Any, name: str | Path) -> Any:
    """A `pyarrow.parquet.ParquetFile` of `source` (a path or a random-access file)."""
    pq = require("pyarrow.parquet", "reading Parquet")
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


def entity_records(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """The entities as output lines hold them, scores rounded to `SCORE_DIGITS`."""
    scored = Span.has_extension(SCORE_EXTENSION)
    entities = []
    for span in spans:
        score = span._.get(SCORE_EXTENSION) if scored else None
        entities.append(
            {
                "start_char": span.start_char,
                "end_char": span.end_char,
                "label": span.label_,
                "text": span.text,
                "score": None if score is None else round(float(score), SCORE_DIGITS),
            }
        )
    return entities


def output_line(record: Record, spans: Sequence[Span]) -> str:
    return f'{{"id":{record.id},"entities":{dumps(entity_records(spans))}}}\n'


def error_line(record: Record) -> str:
    return f'{{"id":{record.id},"line":{record.line},"error":{dumps(record.error)}}}\n'
