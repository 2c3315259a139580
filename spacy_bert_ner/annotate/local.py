"""The `local` engine of `annotate`: one `nlp.pipe` stream in this process.

`n_process` workers on CPU; the output is in input order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spacy.util import minibatch
from wasabi import msg

from ..pipeline.inference_paths import path_in_use
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
    annotator = Annotator.load(
        model,
        batch_size=options.batch_size,
        n_process=options.workers,
        gpu=options.gpus_per_worker > 0,
    )
    msg.text(f"inference path: {path_in_use(annotator.nlp)}")
    records = read_records(input_path, options.text_field, options.id_field)
    return minibatch(annotator.triaged_results(records, done, FirstLines()), options.batch_size)
