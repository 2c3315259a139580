"""The teachers' averaged tag distributions for a training corpus, in one file keyed by
document: what the distillation reader (`spacy_bert_ner.TeacherRuns.v1`) gives the student.

Each teacher runs over whole documents, so its windows see the context they see at inference,
and the student's runs of sentences take their rows from their document's. Predicting the
corpus costs each teacher about an inference pass over it, so the file is reused: a rerun
with the same teachers computes only the documents it lacks (a corpus grown, or a `limit`
raised). A document's key hashes its words; the teachers are identified by a hash of their
pipeline directories' files, so a teacher retrained in place is a new teacher. A file made
by other teachers is replaced whole, with a warning: keeping it would teach the student
what models that no longer exist predicted.

A teacher's distribution is the softmax of the logits its bert_ner predicts, without the
temperature `calibrate` may have fitted (the workflow's teachers come straight from
training, where it is 1). Probabilities are stored as float16 (CoNLL-2003's training set:
204k tokens x 9 tags, 3.7 MB); the loss renormalises each row (`losses.log_probabilities`).
"""

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import spacy
import srsly
from spacy.tokens import Doc
from wasabi import msg

from ..conll import load_gold_docs
from ..errors import BertNERError, one_line
from ..io import atomic_path
from ..pipeline.gold import excerpt
from ..pipeline.loading import load_pipeline, single_bert_ner_pipe
from ..pipeline.losses import log_softmax
from ..pipeline.predict import scored_batches

#: The file's `format` field: what `read_teacher_distributions` accepts.
FORMAT = "spacy_bert_ner.teacher_distributions.v1"


@dataclass
class TeacherDistributions:
    """The file's content: each document's (n_tokens, n_tags) float16 rows over `tags`,
    averaged over `teachers` (each a `{"path", "fingerprint"}`)."""

    tags: list[str]
    teachers: list[dict[str, str]]
    docs: dict[str, np.ndarray] = field(default_factory=dict)

    def rows_of(self, doc: Doc, source: object) -> np.ndarray:
        """The rows of `doc`; `source` (the file) names it in the error for a missing one."""
        rows = self.docs.get(document_key(doc))
        if rows is None:
            raise BertNERError(
                f"{source}: no teacher distributions for the document {excerpt(doc)!r} "
                f"({len(doc)} tokens); rerun teacher-distributions on this corpus"
            )
        return rows

    def made_by(self, fingerprints: Sequence[str]) -> bool:
        return sorted(t["fingerprint"] for t in self.teachers) == sorted(fingerprints)


def document_key(doc: Doc) -> str:
    """A document's key in the file: the SHA-1 of its words (a JSON list, so no separator can
    be confused with a word)."""
    words = json.dumps([token.text for token in doc], ensure_ascii=False)
    return hashlib.sha1(words.encode("utf8")).hexdigest()


def teacher_fingerprint(path: Path) -> str:
    """The SHA-1 of every file of a pipeline directory, with their relative paths."""
    if not path.is_dir():
        raise BertNERError(f"{path}: a teacher must be a pipeline directory")
    digest = hashlib.sha1()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode("utf8") + b"\0")
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_teacher_distributions(path: Path) -> TeacherDistributions:
    """The file at `path`; a missing or foreign file is one error line naming it."""
    try:
        data = srsly.read_msgpack(path)
    except (OSError, ValueError) as err:
        raise BertNERError(f"{path}: cannot read teacher distributions ({one_line(err)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BertNERError(f"{path}: not a teacher distributions file ({FORMAT})")
    return TeacherDistributions(list(data["tags"]), list(data["teachers"]), dict(data["docs"]))


def write_teacher_distributions(path: Path, distributions: TeacherDistributions) -> None:
    """Write the file whole or not at all (`io.atomic_path`)."""
    data = {
        "format": FORMAT,
        "tags": distributions.tags,
        "teachers": distributions.teachers,
        "docs": distributions.docs,
    }
    with atomic_path(path) as tmp_path:
        srsly.write_msgpack(tmp_path, data)


@dataclass(frozen=True)
class DistributionsRun:
    """What `compute_teacher_distributions` did: documents of the corpus, those it predicted,
    and whether it replaced a file made by other teachers."""

    n_docs: int
    computed: int
    replaced: bool


def compute_teacher_distributions(
    teachers: Sequence[Path],
    corpus: Path,
    output: Path,
    *,
    limit: int = 0,
    docs_per_batch: int = 16,
    gpu_id: int = -1,
) -> DistributionsRun:
    """Write to `output` the teachers' averaged distributions for every document of `corpus`
    (its first `limit`, 0: all), predicting only those that `output` lacks."""
    if not teachers:
        raise BertNERError("teacher-distributions: name at least one teacher pipeline")
    fingerprints = [teacher_fingerprint(Path(path)) for path in teachers]
    existing = read_teacher_distributions(output) if output.exists() else None
    replaced = existing is not None and not existing.made_by(fingerprints)
    if replaced:
        msg.warn(f"{output} was made by other teachers: computing every document again")
    found = existing if existing is not None and not replaced else None
    docs = _unique_docs(corpus, limit)
    missing = [doc for key, doc in docs.items() if found is None or key not in found.docs]
    msg.info(f"{len(docs)} documents, {len(docs) - len(missing)} already in {output}")
    if not missing:
        return DistributionsRun(len(docs), 0, False)
    known_tags = None if found is None else found.tags
    tags, averaged = _average_distributions(teachers, missing, known_tags, docs_per_batch, gpu_id)
    records = [
        {"path": str(p), "fingerprint": f} for p, f in zip(teachers, fingerprints, strict=True)
    ]
    result = TeacherDistributions(tags, records, {} if found is None else found.docs)
    result.docs.update(zip((document_key(doc) for doc in missing), averaged, strict=True))
    write_teacher_distributions(output, result)
    msg.good(f"{len(missing)} documents predicted by {len(teachers)} teachers -> {output}")
    return DistributionsRun(len(docs), len(missing), replaced)


def _unique_docs(corpus: Path, limit: int) -> dict[str, Doc]:
    """The corpus's documents by key: the first `limit` non-empty ones (0: all), those that
    spaCy's `Corpus` (under the training readers) reads from a .spacy file."""
    docs = [doc for doc in load_gold_docs(corpus, spacy.blank("xx").vocab) if len(doc)]
    return {document_key(doc): doc for doc in docs[: limit or None]}


def _average_distributions(
    teachers: Sequence[Path],
    docs: list[Doc],
    tags: list[str] | None,
    docs_per_batch: int,
    gpu_id: int,
) -> tuple[list[str], list[np.ndarray]]:
    """The tags and, per document, the mean of the teachers' tag probabilities over them
    (float16). The tags are `tags` (the existing file's), else the first teacher's; every
    teacher must predict the same ones, in any order. One teacher is loaded at a time."""
    sums: list[np.ndarray] = []
    for path in teachers:
        start = time.perf_counter()
        nlp = load_pipeline(str(path), gpu_id)
        name, pipe = single_bert_ner_pipe(nlp, path)
        teacher_tags = list(pipe.tag_scheme.tags)
        if tags is None:
            tags = teacher_tags
        elif sorted(teacher_tags) != sorted(tags):
            raise BertNERError(
                f"{path}: the teacher predicts the tags {teacher_tags}, the other teachers "
                f"{tags}; teachers must share one tag set"
            )
        order = [teacher_tags.index(tag) for tag in tags]
        probs = (
            np.exp(log_softmax(np.asarray(logits, dtype=np.float64), np))[:, order]
            for batch in scored_batches(nlp, name, docs, docs_per_batch)
            for logits in batch.logits()
        )
        if not sums:
            sums = list(probs)
        else:
            sums = [total + p for total, p in zip(sums, probs, strict=True)]
        msg.info(f"{path}: {len(docs)} documents in {time.perf_counter() - start:.0f} s")
    assert tags is not None
    return tags, [(total / len(teachers)).astype(np.float16) for total in sums]
