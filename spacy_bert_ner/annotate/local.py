"""The `local` engine of `annotate`: one `nlp.pipe` stream in this process.

`n_process` workers on CPU; the output is in input order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spacy.util import minibatch

from ..pipeline.loading import load_pipeline
from .annotator import Annotator, EngineOptions
from .progress import Done, FirstLines
from .records import Result, read_records


def local_results(
    model: str,
    input_path: Path,
    done: Done,
    options: EngineOptions,
) -> Iterator[list[Result]]:
    """The results of the local engine, one list per batch, in input order.

    The pipeline loads at the call, so a model that cannot load fails before any file is
    touched; the records are read as the results are consumed.
    """
    nlp = load_pipeline(model, gpu_id=0 if options.gpus_per_worker > 0 else -1)
    records = read_records(input_path, options.text_field, options.id_field)
    annotator = Annotator(nlp, options.batch_size, n_process=options.workers)
    return minibatch(annotator.annotate(records, done, FirstLines()), options.batch_size)
