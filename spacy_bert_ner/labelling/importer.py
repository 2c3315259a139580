"""`python -m spacy_bert_ner import-annotations`: people's corrections as a `.spacy` corpus.

Every task either becomes a document or is named with the reason it was left out: an
unreadable line, a cancelled or unanswered task, a span whose edges fall inside a token.
A task with one bad span is left out whole: keeping it without that span would teach the
model that those words are no entity. A task whose annotator marked nothing is kept as a
document whose every token is outside any entity, which is what the annotator said.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import spacy
import typer
from spacy.tokens import Doc, DocBin
from wasabi import msg

from ..errors import BertNERError
from ..io import atomic_path
from .formats import Annotated, read_label_studio_task, read_prodigy_task


def read_export(path: Path) -> Iterator[Annotated]:
    """The tasks of a Label Studio JSON export (``.json``) or a Prodigy-style JSONL file."""
    if path.suffix == ".jsonl":
        with path.open("rb") as lines:
            for line, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue
                try:
                    task = json.loads(raw)
                except ValueError as err:
                    yield Annotated(f"line {line}", "", [], f"not valid JSON: {err}")
                    continue
                yield read_prodigy_task(task, line)
        return
    try:
        tasks = json.loads(path.read_bytes())
    except ValueError as err:
        raise BertNERError(f"{path}: not a Label Studio JSON export: {err}") from None
    if not isinstance(tasks, list):
        raise BertNERError(f"{path}: a Label Studio JSON export is an array of tasks")
    for index, task in enumerate(tasks):
        yield read_label_studio_task(task, index)


def annotated_doc(nlp: spacy.Language, task: Annotated) -> tuple[Doc | None, str | None]:
    """The task's text tokenized by `nlp` with its spans as entities, or why it cannot be."""
    doc = nlp.make_doc(task.text)
    spans = []
    for start, end, label in task.spans:
        if not (
            isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(doc.text)
        ):
            return None, f"span {start}-{end} {label} is out of the text's bounds"
        span = doc.char_span(start, end, label=label)
        if span is None:
            return None, (
                f"span {start}-{end} {label} {task.text[start:end]!r} does not align with "
                "token boundaries"
            )
        spans.append(span)
    try:
        doc.set_ents(spans, default="outside")
    except ValueError:
        return None, "overlapping spans"
    return doc, None


def annotated_docs(export: Path, nlp: spacy.Language) -> tuple[list[Doc], list[str]]:
    """The documents of the readable tasks of `export`, tokenized by `nlp`, and one line per
    task left out (each also printed to stderr)."""
    docs, left_out = [], []
    for task in read_export(Path(export)):
        doc, problem = (None, task.problem) if task.problem else annotated_doc(nlp, task)
        if doc is None:
            left_out.append(f"{export}: {task.name}: {problem}")
            # One unwrapped line per task (wasabi wraps at 80 columns), so it can be grepped.
            typer.echo(f"\u26a0 left out: {left_out[-1]}", err=True)
        else:
            docs.append(doc)
    return docs, left_out


def import_annotations(export: Path, output: Path, lang: str = "en") -> tuple[int, list[str]]:
    """Write the readable tasks of `export` to `output` (.spacy); returns how many were written
    and one line per task left out."""
    docs, left_out = annotated_docs(export, spacy.blank(lang))
    with atomic_path(output) as tmp:
        DocBin(docs=docs).to_disk(tmp)
    entities = sum(len(doc.ents) for doc in docs)
    msg.good(f"{len(docs)} documents ({entities} entities) written to {output}; "
             f"{len(left_out)} tasks left out")  # fmt: skip
    return len(docs), left_out
