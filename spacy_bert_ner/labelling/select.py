"""`python -m spacy_bert_ner select`: the documents a person should label next.

`uncertainty` ranks documents by the number of entity errors the model expects to make in
them, from its own span posteriors (`spacy_bert_ner.posteriors`):

    sum over predicted entities of (1 - p(entity))
    + sum over tokens outside every predicted entity of (1 - p(token is outside any entity))

The first term counts the predicted entities that are likely wrong; the second the entity mass
the model left unpredicted, so a document where it is unsure whether anything is there at all
ranks high too (the lowest span probability, or entropy of the predicted tags, would both miss
it). It is the sum of per-document expectations, so a long document with many doubtful
entities outranks a short one with one: for a person correcting pre-annotations, the number of
corrections a document needs is what its labelling teaches, and it is what costs time.
`random` is the baseline every active-learning result is measured against.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import typer
from spacy.language import Language
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from wasabi import msg

from ..annotate.records import read_records
from ..errors import BertNERError
from ..io import atomic_path
from ..pipeline.bert_ner import BertNER
from ..pipeline.loading import load_pipeline, single_bert_ner_pipe
from ..pipeline.predict import scored_batches
from ..pipeline.spans import DecodedDoc
from .formats import (
    Candidate,
    Strategy,
    TaskFormat,
    label_studio_task,
    labelling_config,
    prodigy_task,
)


def expected_errors(decoded: DecodedDoc) -> float:
    """The document's expected number of entity errors (see the module's docstring)."""
    covered = np.zeros(len(decoded.outside_probs), dtype=bool)
    wrong = 0.0
    for span, prob in decoded.entities:
        covered[span.start : span.end] = True
        wrong += 1.0 - prob
    return wrong + float((1.0 - decoded.outside_probs[~covered]).sum())


def read_texts(path: Path, vocab: Vocab, text_field: str) -> Iterator[tuple[str, str]]:
    """(id, text) of each input document: a `.spacy` DocBin (ids are positions) or the
    JSONL/Parquet records `annotate` reads; records it cannot read are named and skipped."""
    if path.suffix == ".spacy":
        for i, doc in enumerate(DocBin().from_disk(path).get_docs(vocab)):
            yield str(i), doc.text
        return
    for record in read_records(path, text_field):
        if record.text is None:
            typer.echo(f"\u26a0 skipped: {path}:{record.line}: {record.error}", err=True)
        else:
            yield record.id, record.text


def candidates(
    nlp: Language, name: str, pipe: BertNER, texts: list[tuple[str, str]]
) -> Iterator[Candidate]:
    """Every input document with the pipeline's bert_ner entities and its expected errors."""
    decoded = (
        found
        for batch in scored_batches(nlp, name, (text for _, text in texts))
        for found in batch.decoded()
    )
    for (doc_id, text), found in zip(texts, decoded, strict=True):
        entities = [
            (span.start_char, span.end_char, span.label_, prob)
            for span, prob in found.entities
            if prob >= pipe.cfg["threshold"]
        ]
        yield Candidate(doc_id, text, entities, expected_errors(found))


def select_documents(
    model: str,
    input_path: Path,
    output: Path,
    *,
    n: int = 200,
    strategy: Strategy = Strategy.uncertainty,
    task_format: TaskFormat = TaskFormat.label_studio,
    seed: int = 0,
    text_field: str = "text",
) -> list[Candidate]:
    """Write the `n` documents of `input_path` chosen by `strategy` as labelling tasks."""
    if n < 1:
        raise BertNERError(f"--n must be at least 1, not {n}")
    nlp = load_pipeline(model)
    name, pipe = single_bert_ner_pipe(nlp, model)
    texts = list(read_texts(Path(input_path), nlp.vocab, text_field))
    if not texts:
        raise BertNERError(f"{input_path}: no documents to choose from")
    if strategy is Strategy.random:
        texts = random.Random(seed).sample(texts, min(n, len(texts)))
    scored = list(candidates(nlp, name, pipe, texts))
    if strategy is Strategy.uncertainty:
        scored.sort(key=lambda c: -c.expected_errors)  # stable: ties keep input order
    chosen = scored[:n]
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf8") as out:
        if task_format is TaskFormat.label_studio:
            version = f"{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version', '')}"
            json.dump([label_studio_task(c, version) for c in chosen], out, ensure_ascii=False)
        else:
            out.writelines(json.dumps(prodigy_task(c), ensure_ascii=False) + "\n" for c in chosen)
    if task_format is TaskFormat.label_studio:
        config = Path(output).with_suffix(".xml")
        config.write_text(labelling_config(list(pipe.labels)), encoding="utf8")
        msg.info(f"Label Studio labelling config for these tasks: {config}")
    total = sum(c.expected_errors for c in chosen)
    msg.good(f"{len(chosen)} of {len(texts)} documents ({strategy.value}) written to {output}; "
             f"expected entity errors in them: {total:.1f}")  # fmt: skip
    return chosen
