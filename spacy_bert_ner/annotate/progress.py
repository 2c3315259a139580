"""Resume and duplicates: what earlier runs wrote, and which records to skip or refuse.

Output and errors are appended and flushed batch by batch. A rerun with the same input and
output first reads both files (cutting off a torn last line left by a crash) and skips the
records already written: an id found in the output, or an (id, line) pair found in the errors
file. Nothing is written twice; delete both files to start over. A record whose id an earlier
line already has is a duplicate: an error record, while the first one is annotated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import BertNERError
from .records import NO_ID, Record, dumps


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
        done.ids.add(dumps(value["id"]))
    for _, value in _written_lines(errors, ("id", "line", "error")):
        done.errors.add((dumps(value["id"]), value["line"]))
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
